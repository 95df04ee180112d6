"""The token file: hashed tokens bound to strategy_ids, checked field by field."""

from __future__ import annotations

import json

import pytest

from signal_export.ingest.tokens import (
    Producer,
    TokenConfigError,
    TokenRegistry,
    hash_token,
    load_token_file,
    new_token,
)


def entry(name="desk", token="t0k", ids=("alpha",), **more):
    return {"name": name, "token_hash": hash_token(token), "strategy_ids": list(ids), **more}


def test_a_token_is_stored_as_its_sha256() -> None:
    assert hash_token("abc") == (
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_new_tokens_are_long_and_random() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50 and min(len(t) for t in tokens) >= 43


def test_yaml_and_json_token_files_load_the_same(tmp_path) -> None:
    data = {"producers": [entry(rate_limit={"per_second": 2, "burst": 5}),
                          entry("ml", "t1", ("beta", "gamma"))]}
    (tmp_path / "t.json").write_text(json.dumps(data))
    import yaml

    (tmp_path / "t.yaml").write_text(yaml.safe_dump(data))
    for name in ("t.json", "t.yaml"):
        reg = load_token_file(tmp_path / name)
        assert reg.authenticate("t0k").name == "desk"
        assert reg.authenticate("t0k").rate_limit.burst == 5
        assert reg.authenticate("t1").strategy_ids == {"beta", "gamma"}
        assert reg.authenticate("t2") is None and reg.authenticate("") is None


def test_the_example_token_file_in_configs_loads() -> None:
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "configs" / "ingest.tokens.example.yaml"
    reg = load_token_file(path)
    assert len(reg) >= 1
    assert all(p.token_hash.startswith("sha256:") for p in reg.producers)


@pytest.mark.parametrize(("bad", "words"), [
    ({"token_hash": "plain-token"}, "token_hash"),
    ({"strategy_ids": []}, "strategy_ids"),
    ({"strategy_ids": ["bad id!"]}, "strategy_ids"),
    ({"name": ""}, "name"),
    ({"rate_limit": {"per_second": 0}}, "rate_limit"),
    ({"colour": "red"}, "unknown field"),
])
def test_a_bad_producer_entry_names_the_field(bad, words) -> None:
    from signal_export.ingest.tokens import registry_from_mapping

    with pytest.raises(TokenConfigError, match=words):
        registry_from_mapping({"producers": [{**entry(), **bad}]})


def test_two_producers_with_one_name_or_one_token_are_refused() -> None:
    with pytest.raises(TokenConfigError, match="more than once"):
        TokenRegistry([Producer("a", hash_token("x"), frozenset({"s"})),
                       Producer("a", hash_token("y"), frozenset({"s"}))])
    with pytest.raises(TokenConfigError, match="share one token"):
        TokenRegistry([Producer("a", hash_token("x"), frozenset({"s"})),
                       Producer("b", hash_token("x"), frozenset({"s"}))])


def test_an_unreadable_or_malformed_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(TokenConfigError, match="token file"):
        load_token_file(tmp_path / "missing.yaml")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(TokenConfigError, match="not valid json"):
        load_token_file(tmp_path / "bad.json")


def test_the_example_token_is_documented_correctly() -> None:
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "configs" / "ingest.tokens.example.yaml"
    assert load_token_file(path).authenticate("example-token-change-me").name == "tradingview-desk"
