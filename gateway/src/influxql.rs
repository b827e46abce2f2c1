//! InfluxQL statement classification. (Provisional minimal version.)

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    Read,
    Write,
    Local,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub kind: StatementKind,
    pub name: String,
    pub databases: Vec<String>,
}

#[derive(Debug)]
pub struct Classified {
    pub statements: Vec<Statement>,
}

impl Classified {
    pub fn writes(&self) -> bool {
        self.statements
            .iter()
            .any(|s| s.kind == StatementKind::Write)
    }
}

pub fn classify(q: &str) -> Result<Classified, String> {
    let statements = q
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let upper = s.to_ascii_uppercase();
            let read = (upper.starts_with("SELECT") && !upper.contains(" INTO "))
                || upper.starts_with("SHOW")
                || upper.starts_with("EXPLAIN");
            Statement {
                kind: if read {
                    StatementKind::Read
                } else {
                    StatementKind::Write
                },
                name: upper
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" "),
                databases: vec![],
            }
        })
        .collect();
    Ok(Classified { statements })
}
