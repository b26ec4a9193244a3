"""The worker fixtures of tests/worker (a real worker on the module's scripted endpoint)."""

from tests.worker.conftest import (  # noqa: F401  (fixtures, found by name)
    module_llm,
    scripted_worker,
    worker_database,
)
