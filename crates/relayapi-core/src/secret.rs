//! Secret strings that never print themselves.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A secret (API key, token, admin secret). `Debug` and `Display` print `[redacted]`;
/// the memory is wiped on drop. Read it with [`SecretString::expose`] only where it is used.
#[derive(Clone, Default)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time equality, for comparing secrets an attacker may probe.
    pub fn ct_eq(&self, other: &str) -> bool {
        self.0.as_bytes().ct_eq(other.as_bytes()).into()
    }

    /// A hint safe to show and store: `sk-…abcd`. Short secrets show no characters at all.
    pub fn masked_hint(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() < 12 {
            return "…".to_string();
        }
        let head: String = chars[..3].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}…{tail}")
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = SecretString::new("sk-live-1234567890abcdef");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert!(!format!("{:?}", Some(&s)).contains("sk-live"));
    }

    #[test]
    fn hint_masks_the_middle() {
        assert_eq!(
            SecretString::new("sk-proj-abcdefghijklmnop").masked_hint(),
            "sk-…mnop"
        );
        assert_eq!(SecretString::new("short").masked_hint(), "…");
    }

    #[test]
    fn constant_time_equality() {
        let s = SecretString::new("admin-secret");
        assert!(s.ct_eq("admin-secret"));
        assert!(!s.ct_eq("admin-secreT"));
        assert!(!s.ct_eq("admin"));
    }
}
