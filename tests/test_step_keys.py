"""Step keys parse and compare; compare-and-set revisions belong to the store that issues them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import StepConflict
from engine.ids import MAX_POSITION, StepKey
from engine.model import ParentRef, RunRecord, RunStatus, StepKind, StepRecord, StepStatus
from engine.ports import Revision
from engine.testing import InMemoryStore
from infra.local import LocalRuntime
from sdk import App
from tests.conftest import START

paths = st.lists(st.integers(min_value=0, max_value=MAX_POSITION), min_size=1, max_size=7)


@given(paths)
def test_a_key_reads_back_from_its_text(path):
    key = StepKey(tuple(path))
    assert StepKey.parse(str(key)) == key


@given(paths, paths)
def test_keys_order_as_their_texts_do(left, right):
    a, b = StepKey(tuple(left)), StepKey(tuple(right))
    assert (a < b) == (str(a) < str(b))
    assert (a == b) == (str(a) == str(b))


def test_a_key_knows_its_parallel_group():
    assert StepKey.parse("00003").group is None
    assert StepKey.parse("00003.00001.00000").group == StepKey.parse("00003")
    nested = StepKey.parse("00003.00001.00002.00000.00004")
    assert nested.group == StepKey.parse("00003.00001.00002")
    assert StepKey.parse("00003").branch(1).child(0) == StepKey.parse("00003.00001.00000")


@pytest.mark.parametrize("text", ["3", "0003", "00003.", "00003..00001", "abcde", "00003#2"])
def test_text_that_is_not_a_key_is_refused(text):
    with pytest.raises(ValueError, match="not a step key"):
        StepKey.parse(text)


def test_records_store_keys_as_their_text():
    parent = ParentRef(run_id="r", step_key="00002.00000.00001", step_id="child")
    assert parent.step_key == StepKey((2, 0, 1))
    assert parent.model_dump(mode="json")["step_key"] == "00002.00000.00001"
    run = RunRecord(
        run_id="r",
        workflow_id="w",
        status=RunStatus.SLEEPING,
        created_at=START,
        updated_at=START,
        event_id="e",
        event_name="go",
        suspended_at=(StepKey((4,)),),
    )
    assert '"suspended_at":["00004"]' in run.model_dump_json()
    assert RunRecord.model_validate_json(run.model_dump_json()) == run


def _record(key: str, output: object = None) -> StepRecord:
    return StepRecord(
        key=key, id="s", kind=StepKind.RUN, status=StepStatus.COMPLETED, output=output
    )


def test_the_fake_issues_a_new_revision_for_every_write_even_of_the_same_record():
    store = InMemoryStore()
    first = store.put_step("r", _record("00000", 1), expected=None)
    second = store.put_step("r", _record("00000", 1), expected=first)
    assert first != second
    with pytest.raises(StepConflict) as lost:
        store.put_step("r", _record("00000", 2), expected=first)
    assert lost.value.current is not None
    assert lost.value.current.revision == second
    assert store.get_step("r", StepKey((0,))) == lost.value.current


def test_dynamodb_compares_and_sets_items_written_before_revisions_existed():
    with LocalRuntime(App("t"), start=START) as rt:
        store, table = rt.services.store, rt.settings.table
        # GIVEN a step item as earlier versions wrote it (its text in `r`)
        old_text = '{"id":"s","kind":"run","status":"COMPLETED","attempts":1,"output":1}'
        rt.clients.dynamodb.put_item(
            TableName=table,
            Item={"pk": {"S": "RUN#r"}, "sk": {"S": "STEP#00000"}, "r": {"S": old_text}},
        )
        stored = store.get_step("r", "00000")
        assert stored is not None and stored.record.key == StepKey((0,))
        # WHEN it is replaced by revision, THEN that works once, and a stale revision loses
        revision = store.put_step("r", _record("00000", 2), expected=stored.revision)
        with pytest.raises(StepConflict) as lost:
            store.put_step("r", _record("00000", 3), expected=stored.revision)
        assert lost.value.current is not None
        assert lost.value.current.record.output == 2
        assert lost.value.current.revision == revision
        # A write of exactly what is stored (a retried request whose first attempt
        # committed) is its own success.
        assert store.put_step("r", _record("00000", 2), expected=stored.revision) == revision
        with pytest.raises(StepConflict):
            store.put_step("r", _record("00000", 4), expected=Revision("not what is stored"))
