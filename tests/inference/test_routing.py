"""Each pack chooses its model: the worker routes a pack's posts to the backend it names."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from modfleet.errors import FatalError, RecoverableError
from modfleet.inference import Classifier, Verdict
from modfleet.inference.adapters import Qwen3GuardAdapter
from modfleet.inference.cascade import CascadeClassifier
from modfleet.inference.openai_backend import HttpOptions, OpenAICompatibleClassifier
from modfleet.inference.routing import Backends
from modfleet.policy import Policy, load_policy
from modfleet.settings import Settings

BASE = load_policy(Settings().policy_path)


class Named(Classifier):
    def __init__(self, model_id: str) -> None:
        self.model_id = model_id

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        return [Verdict(scores={}) for _ in texts]


def bound(pack_id: str, backend: str, model: str) -> Policy:
    ref = BASE.model.model_copy(update={"backend": backend, "id": model})
    return BASE.model_copy(update={"id": pack_id, "model": ref})


def recording() -> tuple[Backends, list[tuple[str, str]]]:
    built: list[tuple[str, str]] = []

    def build(backend: str, model: str) -> Classifier:
        built.append((backend, model))
        return Named(f"{backend}:{model}")

    return Backends(build), built


def test_each_pack_gets_the_backend_and_model_it_names() -> None:
    backends, built = recording()
    cheap, smart = bound("cheap", "embedded", "tiny"), bound("smart", "openai", "guard-8b")
    backends.check([cheap, smart, bound("smart2", "openai", "guard-8b")])
    assert backends.for_policy(cheap).model_id == "embedded:"
    assert backends.for_policy(smart).model_id == "openai:guard-8b"
    assert built == [("embedded", ""), ("openai", "guard-8b")], "one backend per binding"


def test_an_explicit_deployment_backend_overrides_every_pack_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    built: list[tuple[str, str]] = []
    backends = Backends(lambda b, m: built.append((b, m)) or Named(b), override="cascade")
    pack = bound("p", "embedded", "tiny")
    backends.check([pack])
    for _ in range(5):  # as every post of a batch asks
        backends.for_policy(pack)
    assert built == [("cascade", "tiny")]
    assert caplog.text.count("MODFLEET_CLASSIFIER_BACKEND=cascade overrides it") == 1


def test_a_pack_whose_model_is_unknown_is_refused_naming_the_pack() -> None:
    backends, _ = recording()
    with pytest.raises(FatalError, match=r"pack odd@.*names model backend 'tpu'"):
        backends.check([bound("odd", "tpu", "x")])


def test_a_pack_whose_model_cannot_be_built_is_refused_at_load() -> None:
    def build(backend: str, model: str) -> Classifier:
        raise RecoverableError("no inference_urls configured")

    with pytest.raises(FatalError, match=r"pack llm@.*not available: no inference_urls"):
        Backends(build).check([bound("llm", "openai", "guard")])


def test_settings_route_by_the_pack_unless_the_deployment_says_otherwise() -> None:
    routed = Backends.from_settings(Settings(inference_urls=""))
    assert isinstance(routed.for_policy(bound("p", "embedded", "x")), Classifier)
    with pytest.raises(FatalError, match="not available"):
        # An LLM pack on a worker with no inference server configured.
        routed.check([bound("llm", "openai", "guard")])


def test_a_pack_the_model_cannot_score_is_refused_at_load_not_on_a_post() -> None:
    # Qwen3Guard scores its own taxonomy: a pack mapping none of it would allow everything.
    # Found on the first answer, it stopped the worker for every tenant, and again after
    # each restart; at load (and reload) the pack is refused and the running set kept.
    adapter = Qwen3GuardAdapter()
    http = HttpOptions(urls=("http://a.test/v1",), model="qwen3guard")
    classifier = OpenAICompatibleClassifier(adapter, http)
    unmapped = BASE.model_copy(update={"categories": {"spam": BASE.categories["harassment"]}})
    Backends.fixed(classifier).check([BASE])
    with pytest.raises(FatalError, match="maps none of Qwen3Guard's categories"):
        Backends.fixed(classifier).check([BASE, unmapped])
    first = Named("embedded")
    cascade = CascadeClassifier(first, classifier, 0.2, 0.8)
    with pytest.raises(FatalError, match="maps none of Qwen3Guard's categories"):
        Backends.fixed(cascade).check([unmapped])


# As vLLM serves a model by default: its name is the local path it was loaded from.
SERVED_PATH = (
    "/var/lib/kubelet/pods/3f2b9c1e-7a4d-4e2b-9c1f-8d7e6a5b4c3d/volumes/kubernetes.io~csi/"
    "pvc-9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d/mount/hub/models--openai--gpt-oss-safeguard-120b/"
    "snapshots/6bc4a4d0d5e2f3a1b9c8d7e6f5a4b3c2d1e0f9a8"
)


@pytest.mark.parametrize(
    ("model", "words"),
    [
        (SERVED_PATH, r"at most 256 characters"),
        ("openai/gpt-oss-safeguard-20b\n", r"control character"),
    ],
)
def test_a_deployment_model_decisions_could_not_name_is_refused_at_start(
    model: str, words: str
) -> None:
    # The cascade wraps the served model's name in about 90 characters of its own: a name
    # that fits the server may still make a model_id no decision can carry.
    settings = Settings(
        classifier_backend="cascade", cascade_llm_backend="openai", inference_model=model
    )
    with pytest.raises(FatalError, match=rf"MODFLEET_INFERENCE_MODEL(.|\n)*{words}"):
        Backends.from_settings(settings).check([BASE])


def test_a_pack_model_decisions_could_not_name_is_refused_naming_the_pack_field() -> None:
    routed = Backends.from_settings(Settings(inference_urls="http://a.test/v1"))
    with pytest.raises(FatalError, match=r"model\.id(.|\n)*at most 256 characters"):
        routed.check([bound("llm", "openai", "m" * 300)])


def test_a_plugin_model_id_decisions_could_not_carry_is_refused_at_start() -> None:
    with pytest.raises(FatalError, match=r"model_id(.|\n)*control character"):
        Backends.fixed(Named("plugin\x00model")).check([BASE])
