"""Prometheus (worker/metrics.py): each turn's waterfall stages, the reply's time to first
token, failed replies and failed fields."""

from worker import metrics
from worker.sinks import Sink, Turn, register


@register
class MetricsSink(Sink):
    name = "metrics"
    order = 40

    async def turn_finished(self, turn: Turn) -> None:
        agent_id = turn.config.agent_id
        if turn.failure is not None:
            metrics.LLM_ERRORS.labels(turn.model).inc()
        else:
            if turn.llm_node_ttft is not None:
                metrics.LLM_TTFT.labels(turn.model).observe(max(turn.llm_node_ttft, 0.0))
            if turn.status == "failed":
                metrics.TURN_EXTRACTION_FAILURES.labels(agent_id).inc()
        for stage in turn.waterfall():
            metrics.TURN_STAGE_SECONDS.labels(agent_id, stage.stage).observe(stage.seconds)
