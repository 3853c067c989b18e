"""The Bedrock adapter with boto3: S3 and jobs against moto (in-process, and a ThreadedMotoServer on
127.0.0.1), and botocore's Stubber for what moto lacks (deployments, provisioned throughput,
Converse, errors). Every request is checked by botocore against AWS's own service model."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")

import boto3
from botocore import exceptions as bx
from botocore.stub import ANY, Stubber
from moto import mock_aws

from unitune import (
    ConfigurationError,
    FineTuneClient,
    Hyperparameters,
    JobStatus,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitError,
    UnsupportedFeatureError,
)
from unitune.config import RetrySettings, UnituneConfig
from unitune.providers.bedrock import STATUS_MAP, BedrockProvider, BedrockSettings, Deployment
from unitune.testing import FakeClock

REGION = "us-east-1"
BUCKET = "unitune-test-bucket"
ROLE = "arn:aws:iam::123456789012:role/unitune-bedrock"
NOVA = "amazon.nova-micro-v1:0:128k"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0:200k"
CUSTOM = "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.nova-micro-v1:0:128k/abc123"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _settings(**kw: typing.Any) -> BedrockSettings:
    return BedrockSettings(region=REGION, bucket=BUCKET, role_arn=ROLE, **kw)


@pytest.fixture
def moto() -> Iterator[None]:
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        yield


@pytest.fixture
def provider(moto: None) -> BedrockProvider:
    return BedrockProvider(_settings())


@pytest.fixture
def client(provider: BedrockProvider, tmp_path: Path) -> FineTuneClient:
    clock = FakeClock(dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc))
    return FineTuneClient(provider, config=UnituneConfig(), ledger=tmp_path / "ledger.sqlite3", clock=clock)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    from unitune.demo.tickets import write_jsonl

    return write_jsonl(tmp_path / "tickets.jsonl", n=60, seed=3)


def _stubbed(service: str) -> tuple[typing.Any, Stubber]:
    c = boto3.client(service, region_name=REGION)
    return c, Stubber(c)


# -- boundary, settings -----------------------------------------------------------------------------


def test_boto3_loads_only_when_used() -> None:
    code = (
        "import sys; import unitune.providers.bedrock as m; "
        "m.BedrockProvider(m.BedrockSettings(region='us-east-1')); print('boto3' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_settings_name_the_key(moto: None, data: Path, tmp_path: Path) -> None:
    no_bucket = FineTuneClient(BedrockProvider(BedrockSettings(region=REGION, role_arn=ROLE)),
                               config=UnituneConfig(), ledger=False)  # fmt: skip
    with pytest.raises(ConfigurationError, match=r"Set bucket under \[providers.bedrock\]"):
        no_bucket.upload(data, model=NOVA)
    no_role = BedrockProvider(BedrockSettings(region=REGION, bucket=BUCKET))
    ref = no_role.upload(_prepared(tmp_path))
    from unitune.types import JobSpec

    with pytest.raises(ConfigurationError, match="role_arn"):
        no_role.create_job(JobSpec(model=NOVA, training_file=ref), idempotency_key="k")


def test_no_credentials_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ConfigurationError, match="AWS_ACCESS_KEY_ID"):
        BedrockProvider(_settings()).get_job("job-1")


def test_unknown_model_family_asks_for_it(provider: BedrockProvider) -> None:
    with pytest.raises(ConfigurationError, match='family = "nova"'):
        provider.family_of("some.new-model-v9")
    assert BedrockProvider(_settings(family="llama")).family_of("some.new-model-v9") == "llama"
    assert provider.family_of("nova-micro") == "nova"
    assert provider.profile_for(HAIKU) == "bedrock-claude"


# -- status ------------------------------------------------------------------------------------------


def test_status_map_covers_the_service_model() -> None:
    import botocore.session

    model = botocore.session.get_session().get_service_model("bedrock")
    declared = set(model.shape_for("ModelCustomizationJobStatus").enum)
    assert declared == set(STATUS_MAP)
    assert STATUS_MAP["Stopping"] is JobStatus.CANCELLING
    assert not STATUS_MAP["InProgress"].is_terminal


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        ({"validationDetails": {"status": "InProgress"}}, JobStatus.VALIDATING),
        ({"validationDetails": {"status": "Completed"}, "dataProcessingDetails": {"status": "InProgress"}},
         JobStatus.VALIDATING),
        ({"validationDetails": {"status": "Completed"}, "dataProcessingDetails": {"status": "Completed"},
          "trainingDetails": {"status": "NotStarted"}}, JobStatus.QUEUED),
        ({"validationDetails": {"status": "Completed"}, "dataProcessingDetails": {"status": "Completed"},
          "trainingDetails": {"status": "InProgress"}}, JobStatus.RUNNING),
        ({}, JobStatus.RUNNING),
    ],
)  # fmt: skip
def test_in_progress_is_refined_with_status_details(
    details: dict[str, typing.Any], expected: JobStatus
) -> None:
    p = BedrockProvider(_settings())
    assert p._status("InProgress", details) is expected
    assert p._status("Stopping", details) is JobStatus.CANCELLING


# -- errors (Stubber: botocore checks each request against the service model) -----------------------


@pytest.mark.parametrize(
    ("code", "http", "error"),
    [
        ("AccessDeniedException", 403, PermissionDeniedError),
        ("ResourceNotFoundException", 404, NotFoundError),
        ("ThrottlingException", 429, RateLimitError),
        ("ValidationException", 400, ProviderError),
        ("ConflictException", 400, ProviderError),
        ("ServiceQuotaExceededException", 400, ProviderError),
        ("InternalServerException", 500, ProviderUnavailableError),
    ],
)
def test_error_map(code: str, http: int, error: type[Exception]) -> None:
    bedrock, stub = _stubbed("bedrock")
    stub.add_client_error("get_model_customization_job", service_error_code=code, service_message="nope",
                          http_status_code=http, expected_params={"jobIdentifier": "job-1"})  # fmt: skip
    with stub, pytest.raises(error) as info:
        BedrockProvider(_settings(), client={"bedrock": bedrock}).get_job("job-1")
    e = info.value
    assert isinstance(e, ProviderError)
    assert code in str(e)
    assert "nope" in str(e)
    assert isinstance(e.__cause__, bx.ClientError)


def test_connection_errors_are_unavailable() -> None:
    p = BedrockProvider(_settings(endpoint_url="http://127.0.0.1:9"))  # nothing listens on port 9
    with pytest.raises(
        ProviderUnavailableError, match=r"cannot connect to 127\.0\.0\.1:9 \(connection refused\)"
    ):
        p.get_job("job-1")


# -- upload ------------------------------------------------------------------------------------------------


def _prepared(tmp_path: Path, size: int = 0) -> typing.Any:
    from unitune.types import PreparedFile

    path = tmp_path / "train.jsonl"
    line = json.dumps({"schemaVersion": "bedrock-conversation-2024", "messages": [
        {"role": "user", "content": [{"text": "x" * 200}]}, {"role": "assistant", "content": [{"text": "y"}]}]})  # fmt: skip
    path.write_text((line + "\n") * max(1, size // (len(line) + 1)))
    return PreparedFile(path=path, filename="train.jsonl", size_bytes=path.stat().st_size,
                        sha256="ab" * 32, purpose="training")  # fmt: skip


def test_upload_converts_to_the_family_format_and_puts_it_in_s3(client: FineTuneClient, data: Path) -> None:
    ref = client.upload(data, model=NOVA)
    assert ref.id.startswith(f"s3://{BUCKET}/unitune/data/")
    key = ref.id.removeprefix(f"s3://{BUCKET}/")
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    first = json.loads(body.splitlines()[0])
    assert first["schemaVersion"] == "bedrock-conversation-2024"
    assert first["messages"][0]["content"][0]["text"]
    # Claude 3 Haiku trained on Bedrock until 2026-09-10 (the catalog's sunset): a client before it.
    before = FineTuneClient(client.provider, config=UnituneConfig(), ledger=False,
                            clock=FakeClock(dt.datetime(2026, 8, 1, tzinfo=dt.timezone.utc)))  # fmt: skip
    haiku = json.loads(boto3.client("s3", region_name=REGION).get_object(
        Bucket=BUCKET, Key=before.upload(data, model=HAIKU).id.removeprefix(f"s3://{BUCKET}/"))["Body"].read()
        .decode().splitlines()[0])  # fmt: skip
    assert set(haiku) <= {"system", "messages"}
    assert isinstance(haiku["messages"][0]["content"], str)


def test_large_file_goes_in_multipart(provider: BedrockProvider, tmp_path: Path) -> None:
    p = BedrockProvider(_settings(multipart_threshold_bytes=5 * 1024 * 1024))
    prepared = _prepared(tmp_path, size=6 * 1024 * 1024)
    ref = p.upload(prepared)
    head = boto3.client("s3", region_name=REGION).head_object(
        Bucket=BUCKET, Key=ref.id.removeprefix(f"s3://{BUCKET}/")
    )
    assert head["ContentLength"] == prepared.size_bytes
    assert "-" in head["ETag"]  # a multipart upload's ETag has the part count after a dash


# -- jobs (moto) ---------------------------------------------------------------------------------------------


def test_create_sends_strings_token_and_tags_and_reads_the_job(
    provider: BedrockProvider, tmp_path: Path
) -> None:
    from unitune.types import JobSpec

    ref = provider.upload(_prepared(tmp_path))
    spec = JobSpec(model=NOVA, training_file=ref, validation_file=ref, suffix="triage", metadata={"team": "support"},
                   hyperparameters=Hyperparameters(epochs=2, learning_rate=1e-5,
                                                   provider_options={"learningRateWarmupSteps": 5}))  # fmt: skip
    job = provider.create_job(spec, idempotency_key="order-1")
    assert job.id == provider.job_name("order-1")
    assert job.status is JobStatus.RUNNING
    assert job.raw_status == "InProgress"
    assert job.hyperparameters == {"epochCount": "2", "learningRate": "1e-05", "learningRateWarmupSteps": "5"}
    assert job.training_file == ref.id
    assert job.validation_file == ref.id
    assert job.idempotency_key == "order-1"
    tags = boto3.client("bedrock", region_name=REGION).list_tags_for_resource(resourceARN=job.raw["jobArn"])[
        "tags"
    ]
    assert {"key": "unitune_idempotency_key", "value": "order-1"} in tags
    assert provider.find_job("order-1") is not None
    assert provider.find_job("other") is None
    assert [j.id for j in provider.list_jobs()] == [job.id]
    stopped = provider.cancel_job(job.id)
    assert stopped.status in (JobStatus.CANCELLING, JobStatus.CANCELLED)


@pytest.mark.parametrize(
    ("model", "hp", "match"),
    [
        (NOVA, Hyperparameters(batch_size=8), "batch_size for nova"),
        (HAIKU, Hyperparameters(learning_rate=1e-5), "learning_rate for claude"),
        (NOVA, Hyperparameters(learning_rate_multiplier=1.0), "learning_rate_multiplier for nova"),
        (NOVA, Hyperparameters(seed=1), "seed for nova"),
        (
            NOVA,
            Hyperparameters(provider_options={"earlyStoppingPatience": 2}),
            "'earlyStoppingPatience' for nova",
        ),
    ],
)
def test_family_hyperparameters_are_checked_by_name(provider: BedrockProvider, tmp_path: Path, model: str,
                                                    hp: Hyperparameters, match: str) -> None:  # fmt: skip
    from unitune.types import JobSpec

    ref = provider.upload(_prepared(tmp_path))
    with pytest.raises(UnsupportedFeatureError, match=match):
        provider.create_job(JobSpec(model=model, training_file=ref, hyperparameters=hp), idempotency_key="k")
    assert provider.list_jobs() == []


def test_claude_hyperparameters(provider: BedrockProvider, tmp_path: Path) -> None:
    from unitune.types import JobSpec

    ref = provider.upload(_prepared(tmp_path))
    spec = JobSpec(model=HAIKU, training_file=ref, hyperparameters=Hyperparameters(
        epochs=3, batch_size=16, learning_rate_multiplier=0.5, provider_options={"earlyStoppingPatience": 3}))  # fmt: skip
    job = provider.create_job(spec, idempotency_key="k")
    assert job.hyperparameters == {"epochCount": "3", "batchSize": "16", "learningRateMultiplier": "0.5",
                                   "earlyStoppingPatience": "3"}  # fmt: skip


def test_dpo_and_lora_are_refused_before_upload(client: FineTuneClient, data: Path) -> None:
    with pytest.raises(UnsupportedFeatureError, match="DPO"):
        client.create_job(model=NOVA, training_data=data, method="dpo")
    with pytest.raises(UnsupportedFeatureError, match="LoRA"):
        client.create_job(model=NOVA, training_data=data, hyperparameters=Hyperparameters(lora_rank=8))
    assert boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_events_are_unsupported_and_say_so(client: FineTuneClient) -> None:
    with pytest.raises(UnsupportedFeatureError, match="events"):
        client.events("job-1")


class _LosesAnswers:
    """The bedrock client, except that a create's answer is lost after the job was made."""

    def __init__(self, real: typing.Any) -> None:
        self.real = real
        self.creates = 0

    def __getattr__(self, name: str) -> typing.Any:
        return getattr(self.real, name)

    def create_model_customization_job(self, **kwargs: typing.Any) -> typing.Any:
        self.creates += 1
        self.real.create_model_customization_job(**kwargs)
        raise bx.EndpointConnectionError(endpoint_url="https://bedrock.us-east-1.amazonaws.com")


def test_a_retried_create_with_the_same_token_makes_one_job(moto: None, data: Path, tmp_path: Path) -> None:
    lossy = _LosesAnswers(boto3.client("bedrock", region_name=REGION))
    provider = BedrockProvider(
        _settings(), client={"bedrock": lossy, "s3": boto3.client("s3", region_name=REGION)}
    )
    client = FineTuneClient(provider, config=UnituneConfig(), ledger=tmp_path / "l.sqlite3",
                            clock=FakeClock(dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)))  # fmt: skip
    job = client.create_job(model=NOVA, training_data=data, idempotency_key="retry-me")
    assert lossy.creates == 1  # the lost answer was found by name, not created again
    listed = boto3.client("bedrock", region_name=REGION).list_model_customization_jobs()
    assert [j["jobName"] for j in listed["modelCustomizationJobSummaries"]] == [job.id]
    again = client.create_job(model=NOVA, training_data=data, idempotency_key="retry-me")
    assert again.id == job.id
    assert lossy.creates == 1


def test_metrics_come_from_the_csv_files_in_s3(provider: BedrockProvider, tmp_path: Path) -> None:
    from unitune.types import JobSpec

    job = provider.create_job(JobSpec(model=NOVA, training_file=provider.upload(_prepared(tmp_path))),
                              idempotency_key="m")  # fmt: skip
    assert provider.list_metrics(job.id) == []  # nothing written yet
    out = job.raw["outputDataConfig"]["s3Uri"].removeprefix(f"s3://{BUCKET}/")
    arn_id = job.raw["jobArn"].rsplit("/", 1)[-1]
    s3 = boto3.client("s3", region_name=REGION)
    base = f"{out}model-customization-job-{arn_id}"
    s3.put_object(Bucket=BUCKET, Key=f"{base}/training_artifacts/step_wise_training_metrics.csv",
                  Body=b"step_number,epoch_number,training_loss,perplexity\n1,0,2.5,12.1\n2,0,1.9,6.7\n3,1,1.4,4.1\n")  # fmt: skip
    s3.put_object(Bucket=BUCKET, Key=f"{base}/validation_artifacts/post_fine_tuning_validation/validation/validation_metrics.csv",
                  Body=b"step_number,validation_loss\n3,1.6\n")  # fmt: skip
    metrics = provider.list_metrics(job.id)
    assert [(m.step, m.train_loss, m.valid_loss) for m in metrics] == [
        (1, 2.5, None),
        (2, 1.9, None),
        (3, 1.4, 1.6),
    ]
    assert metrics[0].extra == {"perplexity": 12.1}
    assert metrics[2].epoch == 1


# -- a moto server on 127.0.0.1: the whole path over HTTP ------------------------------------------------------


def test_lifecycle_over_http_against_a_moto_server(data: Path, tmp_path: Path) -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        boto3.client("s3", region_name=REGION, endpoint_url=url).create_bucket(Bucket=BUCKET)
        provider = BedrockProvider(_settings(endpoint_url=url, s3_endpoint_url=url))
        client = FineTuneClient(provider, config=UnituneConfig(), ledger=tmp_path / "l.sqlite3",
                                clock=FakeClock(dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)))  # fmt: skip
        job = client.create_job(model="nova-micro", training_data=data, validation_data=data,
                                hyperparameters=Hyperparameters(epochs=2), idempotency_key="http-1")  # fmt: skip
        assert job.model == NOVA
        assert client.get_job(job.id).raw_status == "InProgress"
        assert [j.id for j in client.list_jobs()] == [job.id]
        assert client.cancel_job(job.id).status in (JobStatus.CANCELLING, JobStatus.CANCELLED)
    finally:
        server.stop()


# -- deployment and Converse (Stubber) ----------------------------------------------------------------------


def _succeeded(base: str = NOVA) -> typing.Any:
    from unitune.types import Job

    return Job(id="unitune-abc", provider="bedrock", status=JobStatus.SUCCEEDED, raw_status="Completed",
               model=base, fine_tuned_model=CUSTOM)  # fmt: skip


def test_on_demand_deployment_then_converse_then_undeploy() -> None:
    bedrock, stub = _stubbed("bedrock")
    runtime, rstub = _stubbed("bedrock-runtime")
    dep_arn = "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/abc"
    stub.add_response("create_custom_model_deployment", {"customModelDeploymentArn": dep_arn},
                      {"modelDeploymentName": "triage", "modelArn": CUSTOM, "clientRequestToken": ANY})  # fmt: skip
    stub.add_response("get_custom_model_deployment", {
        "customModelDeploymentArn": dep_arn, "modelDeploymentName": "triage", "modelArn": CUSTOM,
        "createdAt": dt.datetime(2026, 11, 22), "status": "Creating"}, {"customModelDeploymentIdentifier": dep_arn})  # fmt: skip
    stub.add_response("delete_custom_model_deployment", {}, {"customModelDeploymentIdentifier": dep_arn})
    rstub.add_response("converse", {
        "output": {"message": {"role": "assistant", "content": [{"text": '{"category": "billing"}'}]}},
        "stopReason": "end_turn", "usage": {"inputTokens": 12, "outputTokens": 6, "totalTokens": 18},
        "metrics": {"latencyMs": 100}},
        {"modelId": dep_arn, "messages": [{"role": "user", "content": [{"text": "Charged twice"}]}],
         "system": [{"text": "Triage."}], "inferenceConfig": {"maxTokens": 50, "temperature": 0}})  # fmt: skip
    provider = BedrockProvider(_settings(), client={"bedrock": bedrock, "bedrock-runtime": runtime})
    with stub, rstub:
        deployment = provider.deploy(_succeeded(), name="triage")
        assert deployment.kind == "on_demand"
        assert deployment.status == "Creating"
        from unitune.types import Message

        answer = provider.chat(deployment.arn, [Message(role="system", content="Triage."),
                                                Message(role="user", content="Charged twice")],
                               max_tokens=50, temperature=0)  # fmt: skip
        assert answer.content == '{"category": "billing"}'
        assert answer.usage.prompt_tokens == 12
        assert answer.finish_reason == "end_turn"
        provider.undeploy(deployment)
    stub.assert_no_pending_responses()


def test_provisioned_throughput_needs_the_hourly_cost_confirmed() -> None:
    bedrock, stub = _stubbed("bedrock")
    provider = BedrockProvider(_settings(), client={"bedrock": bedrock})
    price = provider.hourly_price(NOVA)  # from the catalog (per model unit, no commitment)
    assert price is not None
    with pytest.raises(ConfigurationError, match=rf"\${price:.2f}/hour") as info:
        provider.deploy(_succeeded(NOVA), kind="provisioned")
    assert f"confirm_hourly_usd={price}" in str(info.value)
    with pytest.raises(ConfigurationError):
        provider.deploy(_succeeded(NOVA), kind="provisioned", confirm_hourly_usd=price / 2)
    assert provider.hourly_price(HAIKU) is None  # the catalog has no rate for it: the caller must name one
    with pytest.raises(ConfigurationError, match="does not have"):
        provider.deploy(_succeeded(HAIKU), kind="provisioned")
    with pytest.raises(UnsupportedFeatureError, match="on-demand deployment"):
        provider.deploy(_succeeded(HAIKU))
    pt_arn = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/xyz"
    stub.add_response("create_provisioned_model_throughput", {"provisionedModelArn": pt_arn},
                      {"modelUnits": 1, "provisionedModelName": "haiku-pt", "modelId": CUSTOM, "clientRequestToken": ANY})  # fmt: skip
    stub.add_response("get_provisioned_model_throughput", {
        "modelUnits": 1, "desiredModelUnits": 1, "provisionedModelName": "haiku-pt", "provisionedModelArn": pt_arn,
        "modelArn": CUSTOM, "desiredModelArn": CUSTOM, "foundationModelArn": "arn:aws:bedrock:us-east-1::foundation-model/x",
        "status": "Creating", "creationTime": dt.datetime(2026, 11, 22), "lastModifiedTime": dt.datetime(2026, 11, 22)},
        {"provisionedModelId": pt_arn})  # fmt: skip
    stub.add_response("delete_provisioned_model_throughput", {}, {"provisionedModelId": pt_arn})
    with stub:
        deployment = provider.deploy(
            _succeeded(HAIKU), kind="provisioned", name="haiku-pt", confirm_hourly_usd=price
        )
        assert deployment.hourly_usd == price
        assert isinstance(deployment, Deployment)
        provider.undeploy(deployment.arn)
    stub.assert_no_pending_responses()


def test_chat_with_an_undeployed_custom_model_says_deploy_first() -> None:
    from unitune.types import Message

    with pytest.raises(ConfigurationError, match="deploy"):
        BedrockProvider(_settings()).chat(CUSTOM, [Message(role="user", content="hi")])


def test_get_by_arn(provider: BedrockProvider) -> None:
    bedrock, stub = _stubbed("bedrock")
    arn = "arn:aws:bedrock:us-east-1:123456789012:model-customization-job/amazon.nova-micro-v1:0:128k/j1"
    stub.add_response("get_model_customization_job", {
        "jobArn": arn, "jobName": "unitune-x", "outputModelName": "m", "roleArn": ROLE, "status": "Completed",
        "creationTime": dt.datetime(2026, 11, 22), "baseModelArn": "arn:aws:bedrock:us-east-1::foundation-model/x",
        "hyperParameters": {"epochCount": "2"}, "trainingDataConfig": {"s3Uri": "s3://b/k"},
        "validationDataConfig": {"validators": []}, "outputDataConfig": {"s3Uri": "s3://b/o/"},
        "outputModelArn": CUSTOM}, {"jobIdentifier": arn})  # fmt: skip
    with stub:
        job = BedrockProvider(_settings(), client={"bedrock": bedrock}).get_job(arn)
    assert job.status is JobStatus.SUCCEEDED
    assert job.fine_tuned_model == CUSTOM
    assert job.id == "unitune-x"


def test_s3_upload_failures_are_mapped_not_leaked(moto: None, tmp_path: Path) -> None:
    # upload_file wraps S3's ClientError in boto3's S3UploadFailedError; the code must survive it.
    p = BedrockProvider(BedrockSettings(region=REGION, bucket="no-such-bucket-here", role_arn=ROLE))
    with pytest.raises(NotFoundError, match="NoSuchBucket"):
        p.upload(_prepared(tmp_path))


def test_names_tags_and_metadata_fit_awss_patterns(provider: BedrockProvider, tmp_path: Path) -> None:
    from unitune.types import JobSpec, PreparedFile

    odd = tmp_path / "my data #1+2.jsonl"
    odd.write_text(_prepared(tmp_path).path.read_text())
    ref = provider.upload(PreparedFile(path=odd, filename=odd.name, size_bytes=odd.stat().st_size, sha256="cd" * 32,
                                       purpose="training"))  # fmt: skip
    assert ref.id.endswith("/my-data-1-2.jsonl")  # S3Uri allows no spaces, '+' or '#'
    key = "order #42, from the façade"
    job = provider.create_job(
        JobSpec(model=NOVA, training_file=ref, suffix="v1.2 triage!"), idempotency_key=key
    )
    tags = boto3.client("bedrock", region_name=REGION).list_tags_for_resource(resourceARN=job.raw["jobArn"])[
        "tags"
    ]
    (tag,) = [t["value"] for t in tags if t["key"] == "unitune_idempotency_key"]
    assert tag.startswith("sha256:")  # the key has characters AWS tags refuse: its digest instead
    model_name = boto3.client("bedrock", region_name=REGION).get_model_customization_job(jobIdentifier=job.id)[
        "outputModelName"]  # fmt: skip
    assert model_name.startswith("v1-2-triage-")
    with pytest.raises(ConfigurationError, match="cannot be a Bedrock job tag"):
        provider.create_job(
            JobSpec(model=NOVA, training_file=ref, metadata={"team": "sales#1"}), idempotency_key="x"
        )


# -- faults: each request of a multipart upload retried on its own; answers cut short (issue 16) -------------


class _Faulty:
    """A before-send hook over moto: fails the requests `rules` name, `times` each, before or after
    moto has acted on them (`after`: the answer is lost on its way back)."""

    def __init__(self) -> None:
        self.rules: list[dict[str, typing.Any]] = []
        self.seen: list[str] = []

    def fail(self, pattern: str, *, status: int | None = None, times: int = 1, after: bool = False) -> None:
        self.rules.append({"pattern": pattern, "status": status, "times": times, "after": after})

    def __call__(self, request: typing.Any, **_: typing.Any) -> typing.Any:
        import re

        from botocore.awsrequest import AWSResponse
        from moto.core.models import botocore_stubber

        from tests.faults.plan import _Raw

        key = f"{request.method} {request.url.split('?')[0].split('.amazonaws.com')[-1]}?{request.url.partition('?')[2]}"
        self.seen.append(key)
        for rule in self.rules:
            if rule["times"] > 0 and re.search(rule["pattern"], key):
                rule["times"] -= 1
                if rule["after"]:
                    botocore_stubber("before-send", request)
                if rule["status"] is None:
                    raise bx.ConnectionClosedError(endpoint_url=request.url)
                code = "SlowDown" if rule["status"] == 503 else "InternalError"
                body = (
                    f"<Error><Code>{code}</Code><Message>injected {rule['status']}</Message></Error>".encode()
                )
                return AWSResponse(
                    request.url, rule["status"], {"content-type": "application/xml"}, _Raw(body)
                )
        return botocore_stubber("before-send", request)


def _faulty_provider(**settings: typing.Any) -> tuple[BedrockProvider, _Faulty]:
    from moto.core.models import botocore_stubber

    from unitune._retry import RetryPolicy
    from unitune.config import RetrySettings

    hook = _Faulty()
    clients = {}
    for service in ("s3", "bedrock"):
        c = boto3.client(service, region_name=REGION, config=_one_attempt())
        c.meta.events.unregister("before-send", botocore_stubber)
        c.meta.events.register("before-send", hook)
        clients[service] = c
    provider = BedrockProvider(_settings(**settings), client=clients)
    provider.bind_retry(RetryPolicy(RetrySettings(), FakeClock()))
    return provider, hook


def test_multipart_parts_and_complete_are_retried_alone(moto: None, tmp_path: Path) -> None:
    provider, hook = _faulty_provider(multipart_threshold_bytes=5 * 1024 * 1024, part_size_bytes=5 * 1024 * 1024,
                                      upload_concurrency=1)  # fmt: skip
    prepared = _prepared(tmp_path, size=11 * 1024 * 1024)  # 3 parts
    hook.fail(r"^POST .*\?uploads", status=503)  # the create, once
    hook.fail(r"^PUT .*partNumber=2", status=503, times=2)  # part 2, twice
    hook.fail(r"^POST .*uploadId=", after=True)  # the complete takes effect, its answer is lost
    ref = provider.upload(prepared)
    s3 = boto3.client("s3", region_name=REGION)
    head = s3.head_object(Bucket=BUCKET, Key=ref.id.removeprefix(f"s3://{BUCKET}/"))
    assert head["ContentLength"] == prepared.size_bytes
    assert sum(k.startswith("PUT") and "partNumber=" in k for k in hook.seen) == 3 + 2
    assert (
        sum(k.startswith("POST") and "?uploads" in k for k in hook.seen) == 2
    )  # one upload started, once retried
    assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")  # nothing half-made left


def test_a_part_that_keeps_failing_aborts_the_upload(moto: None, tmp_path: Path) -> None:
    provider, hook = _faulty_provider(multipart_threshold_bytes=5 * 1024 * 1024, part_size_bytes=5 * 1024 * 1024,
                                      upload_concurrency=1)  # fmt: skip
    hook.fail(r"^PUT .*partNumber=1", status=500, times=100)
    with pytest.raises(ProviderUnavailableError, match="gave up on this step") as info:
        provider.upload(_prepared(tmp_path, size=11 * 1024 * 1024))
    assert getattr(info.value, "retryable", True) is False  # the client does not start it again
    attempts = RetrySettings().max_attempts
    assert (
        sum("partNumber=" in k for k in hook.seen) == attempts
    )  # part 1 each attempt; the others never sent
    assert not boto3.client("s3", region_name=REGION).list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def test_an_answer_cut_short_is_transient_not_an_empty_job(moto: None) -> None:
    from botocore.awsrequest import AWSResponse

    from tests.faults.plan import _Raw

    bedrock = boto3.client("bedrock", region_name=REGION)
    bedrock.meta.events.register_first(
        "before-send", lambda request, **_: AWSResponse(request.url, 200, {}, _Raw(b'{"jobArn": "arn:aws:be'))
    )
    with pytest.raises(ProviderUnavailableError, match="cut short"):  # botocore reads it as an empty answer
        BedrockProvider(_settings(), client={"bedrock": bedrock}).get_job("job-1")


def _one_attempt() -> typing.Any:
    """botocore's own retries off, as the adapter builds its clients: only unitune's policy retries."""
    from botocore.config import Config

    return Config(retries={"mode": "standard", "total_max_attempts": 1})


def test_botocore_sends_each_request_once(moto: None) -> None:
    """botocore's `max_attempts` counts retries (legacy naming): `total_max_attempts` = 1 is one
    request, so botocore never multiplies the attempts of unitune's policy."""
    from botocore.awsrequest import AWSResponse

    from tests.faults.plan import _Raw

    provider = BedrockProvider(_settings())
    s3 = provider._aws("s3")
    sent: list[str] = []

    def fail(request: typing.Any, **_: typing.Any) -> typing.Any:
        sent.append(request.url)
        body = b"<Error><Code>InternalError</Code><Message>x</Message></Error>"
        return AWSResponse(request.url, 500, {"content-type": "application/xml"}, _Raw(body))

    s3.meta.events.register_first("before-send", fail)
    with pytest.raises(ProviderUnavailableError):
        provider._op("s3", "list_objects_v2", "list objects", Bucket=BUCKET)
    assert len(sent) == 1


# -- what the create refuses is refused before anything is put in S3 ----------------------------------------

_REFUSED = [
    pytest.param({"bucket": BUCKET}, {}, ConfigurationError, "role_arn", id="no-role_arn"),
    pytest.param({"role_arn": ROLE}, {}, ConfigurationError, r"Set bucket under", id="no-bucket"),
    pytest.param({}, {"metadata": {"team": "sales#1"}}, ConfigurationError, "cannot be a Bedrock job tag",
                 id="metadata-tag-characters"),
    pytest.param({}, {"metadata": {"unitune_idempotency_key": "mine"}}, ConfigurationError, "unitune's own",
                 id="metadata-reserved-key"),
    pytest.param({}, {"hyperparameters": {"learning_rate_multiplier": 0.5}}, UnsupportedFeatureError,
                 "learning_rate_multiplier for nova", id="nova-learning_rate_multiplier"),
    pytest.param({}, {"hyperparameters": {"provider_options": {"earlyStoppingPatience": 2}}},
                 UnsupportedFeatureError, "'earlyStoppingPatience' for nova", id="nova-claude-option"),
    pytest.param({}, {"hyperparameters": {"provider_options": {"nope": 1}}}, UnsupportedFeatureError,
                 "'nope' for nova", id="unknown-option"),
]  # fmt: skip


def _recorded(settings: BedrockSettings) -> tuple[BedrockProvider, list[str]]:
    """A provider whose S3 and Bedrock clients note every operation they send."""
    sent: list[str] = []
    clients = {service: boto3.client(service, region_name=REGION) for service in ("s3", "bedrock")}
    for service, c in clients.items():
        c.meta.events.register(f"before-call.{service}", lambda model, **_: sent.append(model.name))
    return BedrockProvider(settings, client=clients), sent


@pytest.mark.parametrize(("settings", "kwargs", "error", "match"), _REFUSED)
def test_what_the_create_refuses_is_refused_before_any_upload(
    moto: None, data: Path, settings: dict[str, typing.Any], kwargs: dict[str, typing.Any],
    error: type[Exception], match: str,
) -> None:  # fmt: skip
    provider, sent = _recorded(
        BedrockSettings(region=REGION, **(settings or {"bucket": BUCKET, "role_arn": ROLE}))
    )
    client = FineTuneClient(provider, config=UnituneConfig(), ledger=False,
                            clock=FakeClock(dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)))  # fmt: skip
    with pytest.raises(error, match=match):
        client.create_job(model=NOVA, training_data=data, validation_data=data, **kwargs)
    assert "PutObject" not in sent
    assert sent == []
    assert boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


@pytest.mark.parametrize(("settings", "kwargs", "error", "match"), _REFUSED)
def test_check_job_with_the_stand_in_refuses_as_the_create_does(
    moto: None, tmp_path: Path, settings: dict[str, typing.Any], kwargs: dict[str, typing.Any],
    error: type[Exception], match: str,
) -> None:  # fmt: skip
    from unitune.types import FileRef, JobSpec

    fields = dict(kwargs)
    if isinstance(fields.get("hyperparameters"), dict):
        fields["hyperparameters"] = Hyperparameters(**fields["hyperparameters"])
    section = {"region": REGION, **(settings or {"bucket": BUCKET, "role_arn": ROLE})}
    stand_in = FileRef(id="unitune-check", provider="bedrock")
    # Built from a config section, with no boto3 session or client: the check needs none.
    bare = BedrockProvider.from_config(section)
    with pytest.raises(error, match=match) as checked:
        bare.check_job(JobSpec(model=NOVA, training_file=stand_in, validation_file=stand_in, **fields))
    assert bare._client is None
    assert bare._clients == {}
    ref = BedrockProvider(_settings()).upload(_prepared(tmp_path))
    provider, sent = _recorded(BedrockSettings(**section))
    with pytest.raises(error) as created:
        provider.create_job(JobSpec(model=NOVA, training_file=ref, validation_file=ref, **fields),
                            idempotency_key="k")  # fmt: skip
    assert str(created.value) == str(checked.value)
    assert sent == []  # not even the create


def test_check_job_passes_what_the_create_takes() -> None:
    from unitune.types import FileRef, JobSpec

    stand_in = FileRef(id="unitune-check", provider="bedrock")
    bare = BedrockProvider.from_config({"bucket": BUCKET, "role_arn": ROLE})
    bare.check_job(JobSpec(model=HAIKU, training_file=stand_in, metadata={"team": "support"},
                           hyperparameters=Hyperparameters(epochs=2, learning_rate_multiplier=0.5,
                                                           provider_options={"earlyStoppingPatience": 3})))  # fmt: skip
    assert bare._client is None
    assert bare._clients == {}
