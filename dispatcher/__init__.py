"""The webhook dispatcher: delivers the events outbox to the subscribed webhooks.

It runs out of process (`python -m dispatcher`), so a slow or dead receiver never slows a
conversation: the worker and the admin API only write the outbox. Fan-out turns each outbox
event into one delivery per matching subscription; delivery leases one delivery at a time per
(subscription, ordering_key), signs it per Standard Webhooks and POSTs it, retrying with
backoff until it is delivered or dead-lettered (`failed`).
"""
