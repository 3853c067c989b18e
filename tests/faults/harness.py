"""Full lifecycles through `FineTuneClient` against each vendor's fake under a `FaultPlan`.

One `Harness` per provider builds the fake (OpenAI, Together, Mistral, Cohere: stateful fakes served
to the real SDKs through MockTransport; Bedrock: moto in-process, with the plan as a botocore
`before-send` hook and Converse answered by the hook; Vertex AI: its fake under the plan and a Cloud
Storage emulator beside it), the provider on it and a client waiting on
a `FakeClock`, so backoff and Retry-After take no wall time. `run_lifecycle` is the lifecycle the
soak test and `bench/bench_faults.py` count:

    validate → upload → create (idempotency key) → wait → events → metrics → chat

(events and metrics where the provider offers them).

The fake moves a job on by one status at each poll (`advance`, through `wait`'s `on_update`), and
`jobs_with_key` reads the fake's own state (no faults, no lag) to count duplicates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.faults.plan import FaultPlan
from unitune import FineTuneClient, UnituneError
from unitune._clock import FakeClock
from unitune.config import RetrySettings, UnituneConfig
from unitune.providers.base import Provider
from unitune.types import Job

PROVIDERS = ("openai", "together", "mistral", "cohere", "bedrock", "vertex")
#: Dates on which each provider still takes new jobs (OpenAI stops on 2027-01-06).
TODAY = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)
#: The canary API key every fake provider is built with (tests check it never shows).
API_KEY = "sk-canary-7f3a9c"

_OPEN = (
    '[provider]\nname = "{name}"\naccepts_new_jobs = true\nstatus = "still open for this account"\n'
    '[provider.lifecycle]\nsource = "the soak test"\nas_of = 2026-11-22\nverified = true\n'
)


@dataclasses.dataclass
class Outcome:
    """One lifecycle: how far it got and what ended it."""

    key: str
    completed: bool
    stage: str
    error: BaseException | None
    jobs: int  # jobs the vendor holds with this idempotency key

    @property
    def escaped(self) -> bool:
        """An exception outside unitune's error tree reached the caller."""
        return self.error is not None and not isinstance(self.error, UnituneError)


class Harness:
    """A provider on its fake, a client on a fake clock, and how to move a job on."""

    name: str
    model: str
    #: The create request: `(method, path regex)`.
    create: tuple[str, str] = ("POST", "")

    def __init__(self, plan: FaultPlan, clock: FakeClock, workdir: Path, retry: RetrySettings) -> None:
        self.plan = plan
        self.clock = clock
        self.workdir = workdir
        self.provider = self.build()
        catalog = []
        if self.name in ("mistral", "cohere"):  # retired: an account that still trains says so
            override = workdir / f"{self.name}-open.toml"
            override.write_text(_OPEN.format(name=self.name))
            catalog.append(override)
        config = UnituneConfig(retry=retry, catalog=catalog, home=workdir / "home")
        self.client = FineTuneClient(
            self.provider, config=config, ledger=workdir / "ledger.sqlite3", clock=clock
        )
        # FineTuneClient binds its policy to the provider; said here too so the harness does not
        # depend on it (and an unbound provider would sleep on the system clock).
        self.provider.bind_retry(self.client.retry)

    def build(self) -> Provider:
        raise NotImplementedError

    def jobs_with_key(self, key: str) -> list[str]:
        raise NotImplementedError

    def advance(self, job: Job) -> None:
        """Move the job one status on (the vendor training it), straight in the fake's state."""
        raise NotImplementedError

    def chat_model(self, job: Job) -> str:
        assert job.fine_tuned_model is not None
        return job.fine_tuned_model

    def close(self) -> None:
        self.client.close()


class OpenAIHarness(Harness):
    name = "openai"
    model = "gpt-4o-mini-2024-07-18"
    create = ("POST", r"/v1/fine_tuning/jobs")

    def build(self) -> Provider:
        import httpx2
        import openai

        from tests.openai_adapter.fake_api import FakeOpenAI
        from unitune.providers.openai import OpenAIProvider, OpenAISettings

        self.api = FakeOpenAI(self.plan)
        sdk = openai.OpenAI(api_key=API_KEY, base_url="http://openai.test/v1", max_retries=0,
                            http_client=httpx2.Client(transport=self.api.transport()))  # fmt: skip
        # Small parts: every upload goes through the Uploads API (create, 3-4 parts, complete).
        settings = OpenAISettings(
            api_key=API_KEY, multipart_threshold_bytes=1024, part_size_bytes=4096, upload_concurrency=1
        )
        return OpenAIProvider(settings, client=sdk)

    def jobs_with_key(self, key: str) -> list[str]:
        return self.api.jobs_with_key(key)

    def advance(self, job: Job) -> None:
        state = self.api.jobs[job.id]
        if state["status"] == "validating_files":
            self.api.set_status(job.id, "running")
            self.api.add_event(job.id, "Step 1/2: training loss=0.90", type="metrics",
                               data={"step": 1, "train_loss": 0.9})  # fmt: skip
        elif state["status"] == "running":
            self.api.set_status(job.id, "succeeded", fine_tuned_model=f"ft:{self.model}:org::{job.id}")


class TogetherHarness(Harness):
    name = "together"
    model = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
    create = ("POST", r"/v1/fine-tunes")

    def build(self) -> Provider:
        import httpx
        import together

        from tests.together_adapter.fake_api import FakeTogether
        from unitune.providers.together import TogetherProvider, TogetherSettings

        self.api = FakeTogether(self.plan)
        sdk = together.Together(api_key=API_KEY, base_url="http://together.test", max_retries=0,
                                http_client=httpx.Client(transport=self.api.transport()))  # fmt: skip
        # Small parts: every upload goes through the multipart protocol (initiate, parts, complete).
        settings = TogetherSettings(
            api_key=API_KEY, multipart_threshold_bytes=1024, part_size_bytes=4096, upload_concurrency=1
        )
        return TogetherProvider(settings, client=sdk)

    def jobs_with_key(self, key: str) -> list[str]:
        return self.api.jobs_with_key(key)

    def advance(self, job: Job) -> None:
        state = self.api.jobs[job.id]
        if state["status"] == "pending":
            self.api.set_status(job.id, "running", epochs_completed=0)
            self.api.metrics[job.id] = [{"train/loss": 0.9, "train/global_step": 1}]
        elif state["status"] == "running":
            self.api.set_status(job.id, "completed", epochs_completed=1)


class MistralHarness(Harness):
    name = "mistral"
    model = "open-mistral-7b"
    create = ("POST", r"/v1/fine_tuning/jobs")

    def build(self) -> Provider:
        import httpx
        import httpx2
        from mistralai.client import Mistral

        from tests.mistral_adapter.fake_api import FakeMistral
        from unitune.providers.mistral import MistralProvider, MistralSettings

        self.api = FakeMistral(self.plan)
        sdk = Mistral(api_key=API_KEY, server_url="http://mistral.test",
                      client=httpx2.Client(transport=self.api.sdk_transport()))  # fmt: skip
        http = httpx.Client(base_url="http://mistral.test", transport=self.api.http_transport(),
                            headers={"Authorization": f"Bearer {API_KEY}"})  # fmt: skip
        return MistralProvider(MistralSettings(api_key=API_KEY), client=sdk, http=http)

    def jobs_with_key(self, key: str) -> list[str]:
        return self.api.jobs_with_key(key)

    def advance(self, job: Job) -> None:
        state = self.api.jobs[job.id]
        if state["status"] in ("QUEUED", "VALIDATING", "VALIDATED"):
            self.api.set_status(job.id, "RUNNING")
            state["checkpoints"] = [
                {"step_number": 1, "created_at": 1_780_000_100, "metrics": {"train_loss": 0.9}}
            ]
        elif state["status"] == "RUNNING":
            self.api.set_status(job.id, "SUCCESS", fine_tuned_model=f"ft:{self.model}:org:{job.id}")


class CohereHarness(Harness):
    name = "cohere"
    model = "command-r-08-2024"
    create = ("POST", r"/v1/finetuning/finetuned-models")

    def build(self) -> Provider:
        import cohere
        import httpx

        from tests.cohere_adapter.fake_api import FakeCohere
        from unitune.providers.cohere import CohereProvider, CohereSettings

        self.api = FakeCohere(self.plan)
        sdk = cohere.ClientV2(api_key=API_KEY, base_url="http://cohere.test", max_retries=0,
                              httpx_client=httpx.Client(transport=self.api.transport()))  # fmt: skip
        return CohereProvider(CohereSettings(api_key=API_KEY), client=sdk)

    def jobs_with_key(self, key: str) -> list[str]:
        return self.api.jobs_with_key(key)

    def advance(self, job: Job) -> None:
        state = self.api.models[job.id]
        if state["status"] == "STATUS_QUEUED":
            state["status"] = "STATUS_FINETUNING"
            self.api.metrics[job.id] = [{"step_number": 1, "created_at": "2026-11-22T00:01:00Z",
                                         "metrics": {"train_loss": 0.9}}]  # fmt: skip
        elif state["status"] == "STATUS_FINETUNING":
            state["status"] = "STATUS_READY"


class BedrockHarness(Harness):
    """moto in-process for S3 and Bedrock's jobs; the plan as a `before-send` hook on each boto3
    client; Converse (which moto lacks) answered by the hook."""

    name = "bedrock"
    model = "amazon.nova-micro-v1:0:128k"
    bucket = "unitune-soak"
    create = ("POST", r"/model-customization-jobs")

    def build(self) -> Provider:
        import boto3
        from moto.core.models import botocore_stubber

        from unitune.providers.bedrock import BedrockProvider, BedrockSettings

        region = "us-east-1"
        clients = {}
        for service in ("s3", "bedrock", "bedrock-runtime"):
            c = boto3.client(service, region_name=region, config=_one_attempt())
            # botocore calls every before-send handler: moto's own would answer (and act on) a
            # request the plan failed. The plan's hook calls moto itself, when it lets a request through.
            c.meta.events.unregister("before-send", botocore_stubber)
            c.meta.events.register(
                "before-send", self.plan.botocore_hook(lambda r: _aws_answer(r, botocore_stubber))
            )
            clients[service] = c
        boto3.client("s3", region_name=region).create_bucket(Bucket=self.bucket)
        settings = BedrockSettings(
            region=region, bucket=self.bucket, role_arn="arn:aws:iam::123456789012:role/soak"
        )
        return BedrockProvider(settings, client=clients)

    def _jobs(self) -> dict[str, Any]:
        from moto.bedrock.models import bedrock_backends

        jobs: dict[str, Any] = bedrock_backends["123456789012"]["us-east-1"].model_customization_jobs
        return jobs

    def jobs_with_key(self, key: str) -> list[str]:
        from unitune.providers.bedrock import BedrockProvider

        assert isinstance(self.provider, BedrockProvider)
        name = self.provider.job_name(key)
        return [n for n in self._jobs() if n == name]

    def advance(self, job: Job) -> None:
        self._jobs()[job.id].status = "Completed"

    def chat_model(self, job: Job) -> str:
        return self.model  # a tuned model needs a deployment first; the base model answers here


def _aws_answer(request: Any, moto: Callable[..., Any]) -> Any:
    """What AWS answers: Converse canned (moto has none), everything else moto's."""
    from botocore.awsrequest import AWSResponse

    from tests.faults.plan import _Raw

    if request.url.endswith("/converse"):
        body = (b'{"output": {"message": {"role": "assistant", "content": [{"text": "echo"}]}}, '
                b'"stopReason": "end_turn", "usage": {"inputTokens": 5, "outputTokens": 1, "totalTokens": 6}, '
                b'"metrics": {"latencyMs": 1}}')  # fmt: skip
        return AWSResponse(request.url, 200, {"content-type": "application/json"}, _Raw(body))
    return moto("before-send", request)


class VertexHarness(Harness):
    """The real google-genai on `FakeVertex` (the plan around its transport), and the real Cloud Storage
    client on `gcp-storage-emulator` (127.0.0.1, in memory; not under the plan). The fake moves a job
    on by itself at each get."""

    name = "vertex"
    model = "gemini-3.5-flash"
    create = ("POST", r"/v1beta1/projects/[^/]+/locations/[^/]+/tuningJobs")

    def build(self) -> Provider:
        import httpx
        from gcp_storage_emulator.server import create_server
        from google import genai
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage
        from google.genai import types
        from google.oauth2.credentials import Credentials

        from tests.vertex_adapter.fake_api import FakeVertex
        from unitune.providers.vertex import VertexProvider, VertexSettings

        self.gcs = create_server("127.0.0.1", 0, in_memory=True, default_bucket="unitune-soak")
        self.gcs.start()
        port = self.gcs._api._httpd.server_address[1]
        self.api = FakeVertex(self.plan)
        http = types.HttpOptions(base_url="http://vertex.test/", retry_options=types.HttpRetryOptions(attempts=1),
                                 httpx_client=httpx.Client(transport=self.api.transport()))  # fmt: skip
        sdk = genai.Client(vertexai=True, project="soak", location="us-central1", credentials=Credentials(token=API_KEY),
                           http_options=http)  # fmt: skip
        gcs = storage.Client(project="soak", credentials=AnonymousCredentials(),
                             client_options={"api_endpoint": f"http://127.0.0.1:{port}"})  # fmt: skip
        settings = VertexSettings(
            project="soak", location="us-central1", bucket="unitune-soak", access_token=API_KEY
        )
        return VertexProvider(settings, client=sdk, storage=gcs)

    def jobs_with_key(self, key: str) -> list[str]:
        return self.api.jobs_with_key(key)

    def advance(self, job: Job) -> None:
        """Nothing to do: the fake moves a job on at each get, as the wait polls."""

    def close(self) -> None:
        super().close()
        self.gcs.stop()


HARNESSES: dict[str, type[Harness]] = {
    h.name: h
    for h in (OpenAIHarness, TogetherHarness, MistralHarness, CohereHarness, BedrockHarness, VertexHarness)
}


@contextlib.contextmanager
def aws_env() -> Iterator[None]:
    """Fake AWS credentials (the canary as the secret) and moto, for the Bedrock harness."""
    import os

    from moto import mock_aws

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                            "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_EC2_METADATA_DISABLED")}  # fmt: skip
    os.environ.update(AWS_ACCESS_KEY_ID="AKIASOAKTEST", AWS_SECRET_ACCESS_KEY=API_KEY, AWS_DEFAULT_REGION="us-east-1",
                      AWS_EC2_METADATA_DISABLED="true")  # fmt: skip
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    try:
        with mock_aws():
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_lifecycle(h: Harness, data: Path, key: str) -> Outcome:
    """validate → upload → create → wait → events → metrics → chat; what ended it, and the jobs
    the vendor holds for `key` afterwards."""
    client = h.client
    stage = "validate"
    error: BaseException | None = None
    try:
        report = client.validate(data, model=h.model)
        assert report.ok, report.summary()
        stage = "upload"
        ref = client.upload(data, model=h.model)
        stage = "create"
        job = client.create_job(model=h.model, training_data=ref, idempotency_key=key)
        stage = "wait"
        done = client.wait(job, on_update=h.advance)
        if h.provider.capabilities.events:
            stage = "events"
            client.events(done)
        if h.provider.capabilities.metrics:
            stage = "metrics"
            client.metrics(done)
        stage = "chat"
        client.chat(h.chat_model(done), "Where is my order?")
        stage = "done"
    except Exception as e:  # counted: the soak asserts every one is unitune's
        error = e
    return Outcome(key=key, completed=error is None, stage=stage, error=error, jobs=len(h.jobs_with_key(key)))


@dataclasses.dataclass
class Run:
    """Many lifecycles on one provider at one fault rate."""

    provider: str
    rate: float
    outcomes: list[Outcome]
    requests: int
    faults: dict[str, int]
    wall_s: float
    simulated_s: float

    @property
    def completed(self) -> int:
        return sum(o.completed for o in self.outcomes)

    @property
    def max_jobs_per_key(self) -> int:
        return max((o.jobs for o in self.outcomes), default=0)

    @property
    def escaped(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.escaped]


def soak(
    provider: str,
    rate: float,
    lifecycles: int,
    workdir: Path,
    *,
    seed: int = 16,
    retry: RetrySettings | None = None,
    list_lag: float = 0.0,
    kinds: tuple[str, ...] | None = None,
    data_examples: int = 24,
    **plan_options: Any,
) -> Run:
    """`lifecycles` full lifecycles of `provider` at fault `rate`, seeded: the same arguments give
    the same run."""
    from tests.faults.plan import KINDS
    from unitune.demo.tickets import write_jsonl

    random.seed(seed)  # the retry policy's jitter
    workdir.mkdir(parents=True, exist_ok=True)
    data = write_jsonl(workdir / "tickets.jsonl", n=data_examples, seed=seed)
    clock = FakeClock(TODAY)
    plan = FaultPlan(
        rate=rate, seed=seed, clock=clock, list_lag=list_lag, kinds=kinds or KINDS, **plan_options
    )
    stack = contextlib.ExitStack()
    with stack:
        if provider == "bedrock":
            stack.enter_context(aws_env())
        plan.enabled = False  # the harness's own set-up (a bucket) is not under test
        h = HARNESSES[provider](plan, clock, workdir, retry or RetrySettings())
        stack.callback(h.close)
        plan.enabled = True
        start = time.perf_counter()
        outcomes = [run_lifecycle(h, data, f"soak-{provider}-{seed}-{i}") for i in range(lifecycles)]
        wall = time.perf_counter() - start
    return Run(provider, rate, outcomes, plan.requests, dict(plan.counts), wall, clock.monotonic())


def _one_attempt() -> Any:
    """botocore's own retries off, as the adapter builds its clients: only unitune's policy retries."""
    from botocore.config import Config

    return Config(retries={"mode": "standard", "total_max_attempts": 1})
