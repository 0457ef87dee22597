-- Wait estimates count completions and arrivals over the last rate window.
CREATE INDEX dispatch_events_kind_at ON dispatch_events (kind, at);
