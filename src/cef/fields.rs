//! One pass over a record's keys that picks out every field the CEF mapping
//! reads, for activities and alerts alike.
//!
//! The scan stores borrowed tape values in a fixed struct (no allocation)
//! and decides what kind of record it is. Nested objects that the mapping
//! reads (`user`, `device`, `description_metadata`, `mainInfo`) are scanned
//! one level down; arrays (`entities`, `audits`, `matchingRules`,
//! `mainInfo.eventObjects`) are kept whole and walked while rendering.
//! The successor sources' records (a streaming `CloudAppEvents` record, a
//! Graph `alerts_v2` alert) are only recognised here — by `properties`, and
//! by Graph's own keys — and scanned by their mappings
//! ([`super::cloud_app_events`], [`super::graph_alert`]).

use crate::json::JsonValue;

/// What a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A Defender for Cloud Apps activity (`_id`, `eventTypeName`, …).
    Activity,
    /// A Defender for Cloud Apps alert (`_id`, `entities`, …).
    Alert,
    /// A Defender XDR streaming record of `CloudAppEvents`, written in the
    /// activity layout.
    CloudAppEvent,
    /// A Microsoft Graph `alerts_v2` alert, written in the alert layout.
    GraphAlert,
}

/// The fields of one record that the CEF mapping uses.
#[derive(Default, Clone, Copy)]
pub struct RecordFields<'t, 'i> {
    /// The whole record (the Graph mapping scans it with its own keys).
    pub root: Option<JsonValue<'t, 'i>>,
    pub id: Option<JsonValue<'t, 'i>>,
    pub timestamp: Option<JsonValue<'t, 'i>>,
    pub created: Option<JsonValue<'t, 'i>>,
    pub description: Option<JsonValue<'t, 'i>>,

    // Activities.
    pub event_type: Option<JsonValue<'t, 'i>>,
    pub event_type_name: Option<JsonValue<'t, 'i>>,
    pub event_type_value: Option<JsonValue<'t, 'i>>,
    pub event_category: Option<JsonValue<'t, 'i>>,
    pub pretty_operation_name: Option<JsonValue<'t, 'i>>,
    pub event_objects: Option<JsonValue<'t, 'i>>,
    pub user_name: Option<JsonValue<'t, 'i>>,
    pub app_name: Option<JsonValue<'t, 'i>>,
    pub app_id: Option<JsonValue<'t, 'i>>,
    pub client_ip: Option<JsonValue<'t, 'i>>,
    pub user_agent: Option<JsonValue<'t, 'i>>,
    pub matching_rules: Option<JsonValue<'t, 'i>>,

    // Alerts.
    pub title: Option<JsonValue<'t, 'i>>,
    pub alert_type: Option<JsonValue<'t, 'i>>,
    pub type_name: Option<JsonValue<'t, 'i>>,
    pub severity_value: Option<JsonValue<'t, 'i>>,
    pub entities: Option<JsonValue<'t, 'i>>,
    pub audits: Option<JsonValue<'t, 'i>>,
    pub threat_score: Option<JsonValue<'t, 'i>>,
    pub url: Option<JsonValue<'t, 'i>>,

    // Successor sources.
    /// A streaming record's columns.
    pub properties: Option<JsonValue<'t, 'i>>,
    /// A streaming record's table (`AdvancedHunting-CloudAppEvents`).
    pub category: Option<JsonValue<'t, 'i>>,
    /// A key only Graph alerts have (`createdDateTime`, `providerAlertId`,
    /// `alertWebUrl`, `serviceSource`, `@odata.type`).
    pub graph_key: bool,
}

impl<'t, 'i> RecordFields<'t, 'i> {
    /// Scans a record. Returns `None` when the record is not a JSON object.
    pub fn scan(record: JsonValue<'t, 'i>) -> Option<Self> {
        let mut fields = Self { root: Some(record), ..Self::default() };
        for (key, value) in record.object()? {
            match key {
                "_id" => fields.id = Some(value),
                "timestamp" => fields.timestamp = Some(value),
                "created" => fields.created = Some(value),
                "description" => fields.description = Some(value),
                "eventType" => fields.event_type = Some(value),
                "eventTypeName" => fields.event_type_name = Some(value),
                "eventTypeValue" => fields.event_type_value = Some(value),
                "appName" => fields.app_name = Some(value),
                "appId" => fields.app_id = Some(value),
                "matchingRules" => fields.matching_rules = Some(value),
                "user" => fields.user_name = nested(value, "userName"),
                "description_metadata" => fields.event_category = nested(value, "event_category"),
                "device" => {
                    if let Some(device) = value.object() {
                        for (key, value) in device {
                            match key {
                                "clientIP" => fields.client_ip = Some(value),
                                "userAgent" => fields.user_agent = Some(value),
                                _ => {}
                            }
                        }
                    }
                }
                "mainInfo" => {
                    if let Some(main) = value.object() {
                        for (key, value) in main {
                            match key {
                                "prettyOperationName" => fields.pretty_operation_name = Some(value),
                                "eventObjects" => fields.event_objects = Some(value),
                                _ => {}
                            }
                        }
                    }
                }
                "title" => fields.title = Some(value),
                "alertType" => fields.alert_type = Some(value),
                "type" => fields.type_name = Some(value),
                "severityValue" => fields.severity_value = Some(value),
                "entities" => fields.entities = Some(value),
                "audits" => fields.audits = Some(value),
                "threatScore" => fields.threat_score = Some(value),
                "URL" => fields.url = Some(value),
                "properties" => fields.properties = Some(value),
                "category" => fields.category = Some(value),
                "createdDateTime" | "providerAlertId" | "alertWebUrl" | "serviceSource" | "@odata.type" => {
                    fields.graph_key = true;
                }
                _ => {}
            }
        }
        Some(fields)
    }

    /// The kind the record's own keys say it is. Without `_id`: a
    /// `properties` object makes a streaming record, a Graph key a Graph
    /// alert. Then `eventTypeName`/`eventType` make an activity;
    /// `severityValue`/`entities`/`title` an alert.
    pub fn detect_kind(&self) -> Option<RecordKind> {
        if self.id.is_none() {
            if self.properties.is_some_and(|p| p.is_object()) {
                return Some(RecordKind::CloudAppEvent);
            }
            if self.graph_key {
                return Some(RecordKind::GraphAlert);
            }
        }
        if self.event_type_name.is_some() || self.event_type.is_some() {
            Some(RecordKind::Activity)
        } else if self.severity_value.is_some() || self.entities.is_some() || self.title.is_some() {
            Some(RecordKind::Alert)
        } else {
            None
        }
    }
}

#[inline(always)]
fn nested<'t, 'i>(value: JsonValue<'t, 'i>, key: &str) -> Option<JsonValue<'t, 'i>> {
    value.object()?.find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// Treats a missing value, `null` and `""` alike: "not there".
pub fn present<'t, 'i>(value: Option<JsonValue<'t, 'i>>) -> Option<JsonValue<'t, 'i>> {
    value.filter(|v| !v.is_null() && v.as_str() != Some(""))
}
