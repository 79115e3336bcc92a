//! Kernel command line templates.
//!
//! A release's command line may refer to the node that serves it, because a big root
//! filesystem (archiso's `archiso_http_srv=`, SystemRescue's `netboot=`, Debian live's
//! `fetch=`) should come from the client's own site node, whichever node that is. The
//! template is signed as written; each node fills in its own values at boot time.
//!
//! Placeholders are `{{name}}`. Double braces because single braces and `${...}` already
//! mean something on kernel command lines and in iPXE scripts.

use std::fmt;

/// The placeholders a template may use, with what they become.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    (
        "base_url",
        "the serving node's HTTP base URL, e.g. http://10.0.0.1:8080",
    ),
    (
        "image_url",
        "URL prefix of this exact release's files on the serving node",
    ),
    ("name", "the image name"),
    ("version", "the release version"),
    ("mac", "the client's MAC address, aa:bb:cc:dd:ee:ff"),
    (
        "bootif",
        "the client's MAC in PXELINUX BOOTIF form, 01-aa-bb-cc-dd-ee-ff",
    ),
    ("ip", "the client's IPv4 address"),
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("unknown placeholder `{{{{{0}}}}}` in the kernel command line; known: {1}")]
    Unknown(String, String),
    #[error("unclosed `{{{{` in the kernel command line at byte {0}")]
    Unclosed(usize),
    #[error("the kernel command line is longer than 4096 bytes")]
    TooLong,
    #[error("the kernel command line contains a control character (newline, tab, …)")]
    ControlChar,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(&'static str),
}

/// A parsed, validated command line template.
#[derive(Clone, PartialEq, Eq)]
pub struct CmdlineTemplate {
    source: String,
    pieces: Vec<Piece>,
}

/// Values for a template's placeholders, supplied by the serving node.
#[derive(Debug, Clone, Default)]
pub struct CmdlineVars {
    pub base_url: String,
    pub image_url: String,
    pub name: String,
    pub version: String,
    pub mac: String,
    pub bootif: String,
    pub ip: String,
}

impl CmdlineVars {
    fn get(&self, var: &str) -> &str {
        match var {
            "base_url" => &self.base_url,
            "image_url" => &self.image_url,
            "name" => &self.name,
            "version" => &self.version,
            "mac" => &self.mac,
            "bootif" => &self.bootif,
            "ip" => &self.ip,
            _ => "",
        }
    }
}

impl CmdlineTemplate {
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        // Kernel command lines are limited (COMMAND_LINE_SIZE is 2048-4096 on x86), and a
        // control character would break the iPXE script or PXELINUX config it is written into.
        if source.len() > 4096 {
            return Err(TemplateError::TooLong);
        }
        if source.chars().any(char::is_control) {
            return Err(TemplateError::ControlChar);
        }
        let mut pieces = Vec::new();
        let mut rest = source;
        let mut offset = 0;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or(TemplateError::Unclosed(offset + start))?;
            let name = after[..end].trim();
            let var = PLACEHOLDERS
                .iter()
                .map(|(n, _)| *n)
                .find(|n| *n == name)
                .ok_or_else(|| {
                    let known = PLACEHOLDERS.iter().map(|(n, _)| *n).collect::<Vec<_>>();
                    TemplateError::Unknown(name.to_string(), known.join(", "))
                })?;
            pieces.push(Piece::Var(var));
            let consumed = start + 2 + end + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Self {
            source: source.to_string(),
            pieces,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn render(&self, vars: &CmdlineVars) -> String {
        let mut out = String::with_capacity(self.source.len() + 64);
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => out.push_str(vars.get(v)),
            }
        }
        out
    }
}

impl fmt::Debug for CmdlineTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_placeholders() {
        let t = CmdlineTemplate::parse(
            "console=ttyS0 archiso_http_srv={{image_url}}/ BOOTIF={{ bootif }} ip={{ip}} ${x}",
        )
        .unwrap();
        let vars = CmdlineVars {
            image_url: "http://n/images/arch/3".into(),
            bootif: "01-aa-bb-cc-dd-ee-ff".into(),
            ip: "10.0.0.9".into(),
            ..Default::default()
        };
        assert_eq!(
            t.render(&vars),
            "console=ttyS0 archiso_http_srv=http://n/images/arch/3/ BOOTIF=01-aa-bb-cc-dd-ee-ff ip=10.0.0.9 ${x}"
        );
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(
            matches!(CmdlineTemplate::parse("a={{nope}}"), Err(TemplateError::Unknown(n, _)) if n == "nope")
        );
        assert_eq!(
            CmdlineTemplate::parse("a={{ip"),
            Err(TemplateError::Unclosed(2))
        );
        assert_eq!(
            CmdlineTemplate::parse("a\nb"),
            Err(TemplateError::ControlChar)
        );
        assert_eq!(
            CmdlineTemplate::parse(&"x".repeat(5000)),
            Err(TemplateError::TooLong)
        );
        assert_eq!(
            CmdlineTemplate::parse("")
                .unwrap()
                .render(&CmdlineVars::default()),
            ""
        );
    }
}
