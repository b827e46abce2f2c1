//! `gateway members list|add|remove`: a thin client of a node's `/admin/members`.

use std::time::Duration;

use base64::Engine as _;

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
    let credentials = args.username.as_deref().map(|user| {
        let pair = format!("{user}:{}", args.password.as_deref().unwrap_or_default());
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    });
    match request(&args.node, credentials.as_deref(), method, &path, &body) {
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
    addr: &str,
    authorization: Option<&str>,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), Box<ureq::Transport>> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let mut req = agent.request(method, &format!("http://{addr}{path}"));
    if let Some(value) = authorization {
        req = req.set("Authorization", value);
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
        Err(ureq::Error::Transport(e)) => Err(Box::new(e)),
    }
}
