"""What every CloudEvent Switchboard sends carries, as the tests of each sender check it."""

CLOUDEVENT_KEYS = frozenset(
    {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"}
)
"""The attributes of a structured-mode event, exactly: no more (no extension leaks), no fewer."""
