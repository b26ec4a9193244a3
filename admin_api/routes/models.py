"""Which model the `local` agent types really run on, so the console can say so.

A config's `llm: {provider: local, model: smollm2-135m-instruct}` says little by itself: the
worker sends every `local` LLM without a `base_url` of its own to `LOCAL_LLM_URL`, with the
model `LOCAL_LLM_MODEL` when that is set, and `SWITCHBOARD_MODEL_PROFILE=cloud` moves them to
OpenAI. Those are the operator's environment, not the database, so the API reports its own
copy of them: give the admin API the worker's `SWITCHBOARD_MODEL_PROFILE` and `LOCAL_LLM_*`
(`make dev` does; in Kubernetes both read the same ConfigMap). Nothing here calls the model
server: this is what the worker is configured to do, not a health check.
"""

from fastapi import APIRouter
from pydantic import BaseModel, Field

from admin_api.deps import ReaderKey, SettingsDep
from admin_api.problems import problem_responses
from admin_api.routes import API_V1

router = APIRouter(prefix=API_V1, tags=["models"])

OPENAI_URL = "https://api.openai.com/v1"


class LocalModel(BaseModel):
    profile: str = Field(
        description="`local`, or `cloud` (local types run on OpenAI: `url` and `model` say so)."
    )
    url: str = Field(
        description="Where a `local` agent type without its own `llm.base_url` sends its requests."
    )
    model: str | None = Field(
        description="The model name sent there for every such type; null: each type's own `llm.model`."
    )
    embedded: bool = Field(
        description="The endpoint is the embedded SmolLM2-135M `make dev` starts: it proves the wiring, "
        "its replies are not meaningful."
    )


@router.get("/models/local", responses=problem_responses(401, 403))
async def local_model(caller: ReaderKey, settings: SettingsDep) -> LocalModel:
    """The model behind every `local` agent type that names no `base_url` of its own."""
    if settings.model_profile == "cloud":
        return LocalModel(
            profile="cloud", url=OPENAI_URL, model=settings.cloud_llm_model, embedded=False
        )
    return LocalModel(
        profile="local",
        url=settings.local_llm_url,
        model=settings.local_llm_model,
        embedded=settings.local_llm_embedded,
    )
