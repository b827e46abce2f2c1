//! `gateway members list|add|remove`: a thin client of a node's `/admin/members`.

use std::time::Duration;

use crate::config::{MembersAction, MembersArgs};

pub fn run(args: &MembersArgs) -> i32 {
    let (method, path, body) = match &args.action {
        MembersAction::List => ("GET", "/admin/members".to_owned(), String::new()),
        MembersAction::Add { id, peer_addr } => (
            "POST",
            "/admin/members".to_owned(),
            serde_json::json!({ "id": id, "peer_addr": peer_addr }).to_string(),
        ),
        MembersAction::Remove { id } => {
            ("DELETE", format!("/admin/members?id={id}"), String::new())
        }
    };
    match request(args, method, &path, &body) {
        Ok((status, text)) => {
            let pretty = serde_json::from_str::<serde_json::Value>(&text)
                .map(|v| serde_json::to_string_pretty(&v).unwrap_or(text.clone()))
                .unwrap_or(text);
            println!("{pretty}");
            if (200..300).contains(&status) {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("gateway members: cannot reach {}: {e}", args.node);
            1
        }
    }
}

fn request(
    args: &MembersArgs,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let mut agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30));
    let base = match (&args.ca, args.node.contains("://")) {
        (_, true) => args.node.trim_end_matches('/').to_owned(),
        (Some(_), false) => format!("https://{}", args.node),
        (None, false) => format!("http://{}", args.node),
    };
    if let Some(ca) = &args.ca {
        let config = crate::tls::client_trusting(ca).map_err(|e| e.to_string())?;
        agent = agent.tls_config(config);
    }
    let mut req = agent.build().request(method, &format!("{base}{path}"));
    if let Some(user) = &args.username {
        let password = args.password.as_deref().unwrap_or_default();
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        req = req.set("Authorization", &format!("Basic {token}"));
    }
    let result = if body.is_empty() {
        req.call()
    } else {
        req.set("Content-Type", "application/json")
            .send_string(body)
    };
    match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => {
            let status = r.status();
            Ok((status, r.into_string().unwrap_or_default()))
        }
        Err(ureq::Error::Transport(e)) => Err(e.to_string()),
    }
}
