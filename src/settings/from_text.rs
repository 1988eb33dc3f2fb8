//! How the agent's TOML file reads a value through the value's one parser
//! (`FromStr`, the same that clap uses for the flag), so the file accepts
//! exactly what the command line accepts and refuses the rest with the
//! same message. A number in the file reads as the same text would on the
//! command line: `rate_limit = 30` is `30` (per minute), `poll_interval =
//! 60` is `60` (seconds), `facility = 16` is `16`.
//!
//! It knows serde and `FromStr` only, no setting.

use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

/// A value read from the file by `T`'s own parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FromText<T>(pub T);

impl<'de, T> Deserialize<'de> for FromText<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor(PhantomData)).map(FromText)
    }
}

struct TextVisitor<T>(PhantomData<T>);

impl<T> TextVisitor<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    fn parse<E: de::Error>(text: &str) -> Result<T, E> {
        text.parse().map_err(E::custom)
    }
}

impl<T> Visitor<'_> for TextVisitor<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value in quotes (as on the command line) or a number")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        Self::parse(text)
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<T, E> {
        Self::parse(itoa::Buffer::new().format(number))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<T, E> {
        Self::parse(itoa::Buffer::new().format(number))
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<T, E> {
        // `30.0` is the whole number 30, as `30` would be.
        if number.fract() == 0.0 && number.abs() < 1e15 {
            return self.visit_i64(number as i64);
        }
        Self::parse(&number.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RateLimit;
    use crate::syslog::header::Facility;
    use crate::time::HumanDuration;
    use std::time::Duration;

    #[derive(Debug, serde::Deserialize)]
    struct File {
        value: FromText<RateLimit>,
    }

    fn rate(value: &str) -> Result<RateLimit, String> {
        toml::from_str::<File>(&format!("value = {value}")).map(|f| f.value.0).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn text_and_numbers_go_through_the_types_parser() {
        assert_eq!(rate("\"30/min\""), Ok(RateLimit::SERVICE));
        assert_eq!(rate("30"), Ok(RateLimit::SERVICE));
        assert_eq!(rate("30.0"), Ok(RateLimit::SERVICE));
        assert_eq!(
            rate("\"0/min\""),
            Err("\"0/min\": the request count must be a positive integer (e.g. 30/min)".into())
        );
        assert_eq!(rate("30.5"), Err("\"30.5\": the request count must be a positive integer (e.g. 30/min)".into()));
        assert!(rate("true").unwrap_err().contains("a value in quotes"));

        #[derive(Debug, serde::Deserialize)]
        struct Other {
            every: FromText<HumanDuration>,
            facility: FromText<Facility>,
        }
        let other: Other = toml::from_str("every = 60\nfacility = \"local1\"").unwrap();
        assert_eq!((other.every.0, other.facility.0), (HumanDuration(Duration::from_secs(60)), Facility(17)));
    }
}
