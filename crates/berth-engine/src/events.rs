//! The event bus behind `GET /events`: every action is broadcast to live subscribers
//! and kept in a bounded in-memory history so `--since`/`--until` can replay it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use berth_api::{EventActor, EventMessage};
use tokio::sync::broadcast;

use crate::lock;

/// How many past events `--since` can replay (Docker keeps 1024 too).
const HISTORY: usize = 1024;

pub struct Events {
    tx: broadcast::Sender<EventMessage>,
    history: Mutex<VecDeque<EventMessage>>,
}

impl Default for Events {
    fn default() -> Self {
        Events { tx: broadcast::channel(1024).0, history: Mutex::new(VecDeque::with_capacity(HISTORY)) }
    }
}

impl Events {
    /// Records and broadcasts one event. `kind` is container / image / network / volume.
    pub fn emit(&self, kind: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) {
        let now = chrono::Utc::now();
        let nanos = now.timestamp_nanos_opt().unwrap_or(0);
        let legacy = kind == "container" || kind == "image";
        let from = if kind == "container" { attributes.get("image").cloned() } else { None };
        let ev = EventMessage {
            status: legacy.then(|| action.to_string()),
            id: legacy.then(|| id.to_string()),
            from,
            kind: kind.to_string(),
            action: action.to_string(),
            actor: EventActor { id: id.to_string(), attributes },
            scope: "local".into(),
            time: now.timestamp(),
            time_nano: nanos,
        };
        {
            let mut h = lock(&self.history);
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(ev.clone());
        }
        let _ = self.tx.send(ev);
    }

    /// How many `/events` streams are listening now.
    pub fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Past events (for `since`) and a receiver for the live ones, taken atomically so
    /// nothing falls between them.
    pub fn subscribe(&self) -> (Vec<EventMessage>, broadcast::Receiver<EventMessage>) {
        let h = lock(&self.history);
        let rx = self.tx.subscribe();
        (h.iter().cloned().collect(), rx)
    }
}

/// Docker's event filters: type, event/action, container, image, label, plus the
/// object-name filters (matched against the actor id and its `name` attribute).
pub fn matches(ev: &EventMessage, filters: &BTreeMap<String, Vec<String>>) -> bool {
    filters.iter().all(|(key, values)| {
        if values.is_empty() {
            return true;
        }
        let attr = |k: &str| ev.actor.attributes.get(k).map(String::as_str).unwrap_or("");
        let id_or_name = |v: &String| {
            ev.actor.id == *v || ev.actor.id.starts_with(v.as_str()) || attr("name") == v
        };
        match key.as_str() {
            "type" => values.contains(&ev.kind),
            "event" | "action" => values.iter().any(|v| {
                *v == ev.action || ev.action.split(':').next() == Some(v.as_str())
            }),
            "container" => ev.kind == "container" && values.iter().any(id_or_name),
            "image" => values.iter().any(|v| {
                (ev.kind == "image" && id_or_name(v)) || attr("image") == v
            }),
            "network" => ev.kind == "network" && values.iter().any(id_or_name),
            "volume" => ev.kind == "volume" && values.iter().any(id_or_name),
            "label" => values.iter().all(|v| match v.split_once('=') {
                Some((k, val)) => attr(k) == val,
                None => ev.actor.attributes.contains_key(v.as_str()),
            }),
            _ => true,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn emits_docker_shaped_events_and_replays() {
        let bus = Events::default();
        let (past, mut rx) = bus.subscribe();
        assert!(past.is_empty());
        bus.emit("container", "die", "abc", attrs(&[("exitCode", "0"), ("image", "busybox"), ("name", "evtc")]));
        let ev = rx.try_recv().expect("live event");
        assert_eq!(ev.status.as_deref(), Some("die"));
        assert_eq!(ev.from.as_deref(), Some("busybox"));
        assert_eq!(ev.kind, "container");
        let (past, _) = bus.subscribe();
        assert_eq!(past.len(), 1);
    }

    #[test]
    fn filters() {
        let bus = Events::default();
        bus.emit("container", "start", "abc123", attrs(&[("image", "busybox"), ("name", "evtc")]));
        let (past, _) = bus.subscribe();
        let ev = &past[0];
        let f = |s: &str| berth_api::parse_filters(s).expect("filters");
        assert!(matches(ev, &f(r#"{"container":{"evtc":true}}"#)));
        assert!(matches(ev, &f(r#"{"container":{"abc":true}}"#)));
        assert!(!matches(ev, &f(r#"{"container":{"other":true}}"#)));
        assert!(matches(ev, &f(r#"{"type":{"container":true}}"#)));
        assert!(!matches(ev, &f(r#"{"type":{"image":true}}"#)));
        assert!(matches(ev, &f(r#"{"event":{"start":true}}"#)));
        assert!(matches(ev, &f(r#"{"image":{"busybox":true}}"#)));
    }
}
