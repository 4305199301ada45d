"""Schedules and choreography (provisioning/triggers.py, docs/adr/0021), fast: the wave rules, the quiet
period and the schedule's claim, on the real PostgreSQL with a clock of the test's own and runs that end
when the test says so. tests/e2e/test_triggers_end_to_end.py shows the same with a real worker and beat."""
import os
import threading
import time
import uuid
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from onboarding.models import Product
from provisioning import triggers
from provisioning.models import Provisioning, Run, TriggerState
from tests.factories import wid_payload

pytestmark = pytest.mark.django_db

LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}
T0 = datetime(2026, 3, 2, 5, 59, 50, tzinfo=dt_timezone.utc)


@pytest.fixture
def lake(settings, tmp_path):
    settings.LAKE_ROOT = tmp_path / "lake"
    settings.RUN_QUIET_SECONDS = 2.0
    return settings.LAKE_ROOT


@pytest.fixture
def make(team, settings):
    """make(name, depends_on=[...], **config): a provisioned product with those triggers. Its WID is only
    an index row (no git): these tests give the triggers as its approved WID would (`triggers.store`).

    The runs these tests start go to a queue of their own that no worker reads: in the tests that commit
    (two threads at once), the suite's real worker would otherwise take them and hold their rows while
    the test database is flushed."""
    tag = uuid.uuid4().hex[:5]
    settings.RUNS_QUEUE = f"runs-nobody-reads-{tag}"

    def make(name, depends_on=(), provisioned=True, suspended=False, **config):
        slug = f"{name}-{tag}"
        data = wid_payload(slug=slug, team=team.slug, depends_on=[f"{d}-{tag}" for d in depends_on], **LOW_RISK)
        product = Product.objects.create(
            **{key: data[key] for key in ("slug", "name", "domain", "target", "classification", "pii", "compute_tier",
                                          "contacts", "data_custodian", "depends_on", "outputs", "sections")},
            team=team, status="approved", version=1, approved_version=1, suspended=suspended,
            path=f"wids/growth/{slug}.md", head_sha="0" * 40, created_at=T0, updated_at=T0)
        Provisioning.objects.create(product=product, provisioned=provisioned, outputs={"queue": f"runs.{slug}"})
        upstream = tuple(f"{u}-{tag}" for u in config.pop("on_upstream", ()))
        triggers.store(product, triggers.Config(on_upstream=upstream, **config), version=product.approved_version,
                       now=T0)
        return product

    yield make
    import redis

    redis.Redis.from_url(django_settings.CELERY_BROKER_URL).delete(settings.RUNS_QUEUE)


def _end(run: Run, status: str = "succeeded") -> list[Run]:
    """The run ends as the worker ends it, and the worker hands it on."""
    Run.objects.filter(pk=run.pk).update(status=status, finished_at=timezone.now())
    return triggers.after_run(run)


def _only(started: list[Run]) -> Run:
    assert len(started) == 1, started
    return started[0]


# --- the wave rules, without a database --------------------------------------------------------------
DIAMOND = {"a": {"b", "c"}, "b": {"d"}, "c": {"d"}}


def test_a_waves_reach_is_its_first_product_and_everything_after_it():
    assert triggers.reach("a", DIAMOND) == {"a", "b", "c", "d"}
    assert triggers.reach("b", DIAMOND) == {"b", "d"}
    assert triggers.reach("d", DIAMOND) == {"d"}
    assert triggers.reach("a", {"a": {"b"}, "b": {"a"}}) == {"a", "b"}  # a cycle ends, should one ever get in


def test_a_product_waits_for_each_upstream_within_the_reach_and_only_those():
    in_reach = triggers.reach("a", DIAMOND)
    assert not triggers.ready(["b", "c"], in_reach=in_reach, succeeded={"a", "b"})
    assert triggers.ready(["b", "c"], in_reach=in_reach, succeeded={"a", "b", "c"})
    # A wave begun at b does not wait for c, which it never runs.
    assert triggers.ready(["b", "c"], in_reach=triggers.reach("b", DIAMOND), succeeded={"b"})


# --- the configuration, from the approved WID in git ------------------------------------------------
def test_the_triggers_are_read_from_the_approved_wid_once_per_approved_version(member):
    from onboarding import services as wids

    upstream, slug = f"up-{uuid.uuid4().hex[:5]}", f"down-{uuid.uuid4().hex[:5]}"
    wids.wid_create(user=member, data=wid_payload(slug=upstream, **LOW_RISK))
    wids.wid_create(user=member, data=wid_payload(
        slug=slug, depends_on=[upstream], schedule="30 6 * * 1", triggers={"on_file": True, "on_upstream": [upstream]},
        **LOW_RISK))
    product = wids.wid_submit(user=member, slug=slug)
    assert triggers.sync(now=T0) == 0  # not provisioned yet
    Provisioning.objects.create(product=product, provisioned=True)
    assert triggers.sync(now=T0) == 1
    state = TriggerState.objects.get(product=product)
    assert (state.schedule, state.on_file, state.on_upstream, state.config_version) == (
        "30 6 * * 1", True, [upstream], product.approved_version)
    assert state.next_run == datetime(2026, 3, 2, 6, 30, tzinfo=dt_timezone.utc)  # a Monday
    assert triggers.sync(now=T0) == 0  # nothing changed: git is not read again

    # An amendment counts once approved, not while it is a draft.
    wids.wid_update(user=member, slug=slug, data={"version": Product.objects.get(slug=slug).version,
                                                  "schedule": None, "triggers": {"on_file": False, "on_upstream": []}})
    assert triggers.sync(now=T0) == 0 and TriggerState.objects.get(product=product).on_file
    wids.wid_submit(user=member, slug=slug)
    assert triggers.sync(now=T0) == 1
    state.refresh_from_db()
    assert (state.schedule, state.on_file, state.on_upstream, state.next_run) == ("", False, [], None)


# --- upstreams and waves, on the database ---------------------------------------------------------------
def test_a_chain_runs_each_product_once_in_order_labelled_with_its_upstream_run(make):
    a, b, c = make("a"), make("b", ["a"], on_upstream=["a"]), make("c", ["b"], on_upstream=["b"])
    first = Run.objects.create(product=a, trigger="file")
    Run.objects.filter(pk=first.pk).update(wave=first.pk)
    run_b = _only(_end(first))
    assert (run_b.product, run_b.trigger, run_b.wave) == (b, f"upstream:{a.slug}#{first.pk}", first.pk)
    assert run_b.requested_by is None and run_b.queue == f"runs.{b.slug}"
    run_c = _only(_end(run_b))
    assert (run_c.product, run_c.trigger, run_c.wave) == (c, f"upstream:{b.slug}#{run_b.pk}", first.pk)
    assert _end(run_c) == []
    assert _end(first) == []  # handed on once: a second call (the sweep, a redelivery) starts nothing


def test_in_a_diamond_the_join_runs_once_after_both_sides_succeeded(make):
    a = make("a")
    b, c = make("b", ["a"], on_upstream=["a"]), make("c", ["a"], on_upstream=["a"])
    d = make("d", ["b", "c"], on_upstream=["b", "c"])
    first = Run.objects.create(product=a)
    Run.objects.filter(pk=first.pk).update(wave=first.pk)
    run_b, run_c = sorted(_end(first), key=lambda r: r.product.slug)
    assert {run_b.product, run_c.product} == {b, c}
    assert _end(run_b) == []  # c has not finished
    run_d = _only(_end(run_c))
    assert (run_d.product, run_d.trigger) == (d, f"upstream:{c.slug}#{run_c.pk}")
    assert Run.objects.filter(product=d).count() == 1


def test_a_join_waits_for_a_longer_side_that_has_not_started_yet(make):
    a = make("a")
    b, c = make("b", ["a"], on_upstream=["a"]), make("c", ["a"], on_upstream=["a"])
    e = make("e", ["c"], on_upstream=["c"])
    d = make("d", ["b", "e"], on_upstream=["b", "e"])
    first = Run.objects.create(product=a)
    Run.objects.filter(pk=first.pk).update(wave=first.pk)
    run_b, run_c = sorted(_end(first), key=lambda r: r.product.slug)
    assert _end(run_b) == []  # e has no run yet, but it is in the wave's reach: d waits for it
    run_e = _only(_end(run_c))
    assert _only(_end(run_e)).product == d


def test_two_sides_ending_at_the_same_moment_start_the_join_once(make, django_db_blocker):
    a = make("a")
    b, c = make("b", ["a"], on_upstream=["a"]), make("c", ["a"], on_upstream=["a"])
    d = make("d", ["b", "c"], on_upstream=["b", "c"])
    first = Run.objects.create(product=a)
    Run.objects.filter(pk=first.pk).update(wave=first.pk)
    sides = _end(first)
    Run.objects.filter(pk__in=[r.pk for r in sides]).update(status="succeeded", finished_at=timezone.now())
    # Both hand on in this transaction one after the other (the unique index covers two at once: see
    # test_two_workers_ending_both_sides_at_once_start_the_join_once).
    started = [r for side in sides for r in triggers.after_run(side)]
    assert [r.product for r in started] == [d]


@pytest.mark.django_db(transaction=True)
def test_two_workers_ending_both_sides_at_once_start_the_join_once(make):
    a = make("a")
    make("b", ["a"], on_upstream=["a"]), make("c", ["a"], on_upstream=["a"])
    d = make("d", ["b", "c"], on_upstream=["b", "c"])
    first = Run.objects.create(product=a)
    Run.objects.filter(pk=first.pk).update(wave=first.pk)
    sides = _end(first)
    Run.objects.filter(pk__in=[r.pk for r in sides]).update(status="succeeded", finished_at=timezone.now())
    barrier, started = threading.Barrier(len(sides)), []

    def hand_on(run):
        try:
            barrier.wait()
            started.extend(triggers.after_run(run))
        finally:
            connection.close()

    threads = [threading.Thread(target=hand_on, args=(side,)) for side in sides]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Run.objects.filter(product=d).count() == 1 and len(started) <= 1


def test_a_failure_stops_the_chain_there_and_says_where(make):
    a = make("a")
    b, c = make("b", ["a"], on_upstream=["a"]), make("c", ["a"], on_upstream=["a"])
    d = make("d", ["b", "c"], on_upstream=["b", "c"])
    e = make("e", ["d"], on_upstream=["d"])
    first = Run.objects.create(product=a)
    Run.objects.filter(pk=first.pk).update(wave=first.pk)
    run_b, run_c = sorted(_end(first), key=lambda r: r.product.slug)
    assert _end(run_b, "failed") == []
    assert _end(run_c) == []  # d waits for b, which failed: d and e get no run in this wave
    run_b.refresh_from_db()
    assert run_b.stopped_chain == [d.slug, e.slug]
    assert f"Chain stopped at {b.slug}: {d.slug}, {e.slug} get no run in wave {first.pk}." in \
        run_b.lines.values_list("text", flat=True)
    assert triggers.chains_stopped([first, run_c]) == {first.pk: b.slug}
    assert not Run.objects.filter(product__in=[d, e]).exists()


def test_only_provisioned_products_that_are_not_suspended_or_retired_run_by_trigger(make):
    a = make("a")
    make("b", ["a"], on_upstream=["a"], suspended=True)
    make("c", ["a"], on_upstream=["a"], provisioned=False)
    retired = make("r", ["a"], on_upstream=["a"])
    Provisioning.objects.filter(product=retired).update(retired=True)
    d = make("d", ["a"], on_upstream=["a"])
    first = Run.objects.create(product=a)
    Run.objects.filter(pk=first.pk).update(wave=first.pk)
    assert [r.product for r in _end(first)] == [d]
    assert triggers.summary(retired)["paused"] == "retired"


def test_a_manual_run_of_a_middle_product_begins_a_wave_that_runs_only_what_follows_it(make, member):
    from provisioning import runs

    a = make("a")
    b, c = make("b", ["a"], on_upstream=["a"]), make("c", ["a"], on_upstream=["a"])
    d = make("d", ["b", "c"], on_upstream=["b", "c"])
    manual = runs.run_start(user=member, product=b)
    assert (manual.trigger, manual.wave) == ("manual", manual.pk)
    run_d = _only(_end(manual))  # c is not in this wave's reach: d does not wait for it
    assert (run_d.product, run_d.wave) == (d, manual.pk)


def test_the_sweep_hands_on_an_end_whose_worker_died_before_handing_it_on(make):
    a, b = make("a"), make("b", ["a"], on_upstream=["a"])
    first = Run.objects.create(product=a)
    Run.objects.filter(pk=first.pk).update(wave=first.pk, status="succeeded", finished_at=timezone.now())
    assert triggers.follow_unchained(now=timezone.now()) == 0  # too early: its worker may be handing it on
    assert triggers.follow_unchained(now=timezone.now() + timedelta(minutes=1)) == 1
    assert Run.objects.get(product=b).trigger == f"upstream:{a.slug}#{first.pk}"
    assert triggers.follow_unchained(now=timezone.now() + timedelta(minutes=1)) == 0


# --- files in raw/ and the quiet period ----------------------------------------------------------------
def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1e9)


def test_a_new_or_changed_file_arrived_when_written_and_a_removed_one_did_not(settings):
    settings.RUN_WATCH_INTERVAL = 1.0
    now, written = T0, T0 - timedelta(seconds=0.4)
    assert triggers.arrival({}, {"a.csv": [_ns(written), 10]}, now=now) == written
    assert triggers.arrival({"a.csv": [1, 10]}, {"a.csv": [_ns(written), 10]}, now=now) == written
    assert triggers.arrival({"a.csv": [1, 10], "b.csv": [1, 5]}, {"a.csv": [1, 10]}, now=now) is None
    # A copy that kept an old mtime arrived since the previous look; a clock ahead is not believed.
    assert triggers.arrival({}, {"old.csv": [_ns(T0 - timedelta(days=9)), 1]}, now=now) == now - timedelta(seconds=1)
    assert triggers.arrival({}, {"ahead.csv": [_ns(T0 + timedelta(hours=1)), 1]}, now=now) == now


def test_the_quiet_period_starts_nothing_while_files_come_or_a_run_is_on(settings):
    settings.RUN_QUIET_SECONDS = 2.0
    due = triggers.file_run_due
    assert not due(pending=True, changed_at=T0, now=T0 + timedelta(seconds=1.9), busy=False)
    assert due(pending=True, changed_at=T0, now=T0 + timedelta(seconds=2), busy=False)
    assert not due(pending=True, changed_at=T0, now=T0 + timedelta(seconds=60), busy=True)
    assert not due(pending=False, changed_at=T0, now=T0 + timedelta(seconds=60), busy=False)


def test_the_listing_leaves_out_hidden_files_and_links_and_takes_subfolders(lake):
    raw = lake / "p" / "raw"
    (raw / "2026" / "03").mkdir(parents=True)
    (raw / "2026" / "03" / "orders.csv").write_text("id\n1\n")
    (raw / ".orders.csv.partial").write_text("id\n")
    (raw / "link.csv").symlink_to("/etc/passwd")
    listing = triggers.raw_listing("p")
    assert list(listing) == [os.path.join("2026", "03", "orders.csv")]
    assert listing[os.path.join("2026", "03", "orders.csv")][1] == 5
    assert triggers.raw_listing("missing") == {}


def _drop(path, at: datetime) -> None:
    path.write_text("id\n1\n")
    os.utime(path, ns=(_ns(at), _ns(at)))


def test_a_flood_of_files_makes_one_run_once_raw_is_quiet(make, lake):
    product = make("a", on_file=True)
    raw = lake / product.slug / "raw"
    raw.mkdir(parents=True)
    for second in range(5):  # a file a second: never two quiet seconds
        _drop(raw / f"part-{second}.csv", T0 + timedelta(seconds=second))
        assert triggers.watch_raw_folders(now=T0 + timedelta(seconds=second + 0.5)) == 0
    assert triggers.watch_raw_folders(now=T0 + timedelta(seconds=5.9)) == 0
    assert triggers.watch_raw_folders(now=T0 + timedelta(seconds=6)) == 1  # 2 s after the last file was written
    run = Run.objects.get(product=product)
    assert (run.trigger, run.wave, run.requested_by) == ("file", run.pk, None)
    assert triggers.watch_raw_folders(now=T0 + timedelta(seconds=60)) == 0


def test_files_arriving_during_a_run_make_exactly_one_more_run_after_it(make, lake):
    product = make("a", on_file=True)
    raw = lake / product.slug / "raw"
    raw.mkdir(parents=True)
    (raw / "first.csv").write_text("id\n1\n")
    triggers.watch_raw_folders(now=T0)
    assert triggers.watch_raw_folders(now=T0 + timedelta(seconds=2)) == 1
    first = Run.objects.get(product=product)
    Run.objects.filter(pk=first.pk).update(status="running")
    for second in range(3, 8):
        (raw / f"during-{second}.csv").write_text("id\n1\n")
        assert triggers.watch_raw_folders(now=T0 + timedelta(seconds=second)) == 0
    assert triggers.watch_raw_folders(now=T0 + timedelta(seconds=20)) == 0  # still running
    Run.objects.filter(pk=first.pk).update(status="succeeded", finished_at=timezone.now())
    assert triggers.watch_raw_folders(now=T0 + timedelta(seconds=21)) == 1
    Run.objects.filter(product=product).update(status="succeeded", finished_at=timezone.now())
    assert triggers.watch_raw_folders(now=T0 + timedelta(seconds=40)) == 0
    assert Run.objects.filter(product=product, trigger="file").count() == 2


def test_a_file_rewritten_in_place_counts_and_one_removed_does_not(make, lake):
    product = make("a", on_file=True)
    raw = lake / product.slug / "raw"
    raw.mkdir(parents=True)
    (raw / "a.csv").write_text("id\n1\n")
    (raw / "b.csv").write_text("id\n1\n")
    triggers.watch_raw_folders(now=T0)
    triggers.watch_raw_folders(now=T0 + timedelta(seconds=3))
    Run.objects.filter(product=product).update(status="succeeded", finished_at=timezone.now())
    (raw / "b.csv").unlink()
    assert triggers.watch_raw_folders(now=T0 + timedelta(seconds=10)) == 0
    assert triggers.watch_raw_folders(now=T0 + timedelta(seconds=20)) == 0
    (raw / "a.csv").write_text("id\n1\n2\n")
    triggers.watch_raw_folders(now=T0 + timedelta(seconds=30))
    assert triggers.watch_raw_folders(now=T0 + timedelta(seconds=33)) == 1


def test_a_product_without_on_file_is_not_watched(make, lake):
    product = make("a")
    (lake / product.slug / "raw").mkdir(parents=True)
    (lake / product.slug / "raw" / "a.csv").write_text("id\n1\n")
    triggers.watch_raw_folders(now=T0)
    assert triggers.watch_raw_folders(now=T0 + timedelta(seconds=10)) == 0


# --- schedules ------------------------------------------------------------------------------------------
def test_a_schedule_starts_its_slot_once_however_many_schedulers_tick(make):
    product = make("a", schedule="0 6 * * *")
    state = TriggerState.objects.get(product=product)
    assert state.next_run == datetime(2026, 3, 2, 6, 0, tzinfo=dt_timezone.utc)
    assert triggers.summary(product)["next_run"] == state.next_run
    assert triggers.start_scheduled_runs(now=T0) == 0  # not yet
    slot = T0 + timedelta(seconds=15)
    assert triggers.start_scheduled_runs(now=slot) == 1
    assert triggers.start_scheduled_runs(now=slot) == 0  # a second scheduler, or beat restarted
    run = Run.objects.get(product=product)
    assert (run.trigger, run.requested_by, run.wave) == ("schedule", None, run.pk)
    state.refresh_from_db()
    assert state.schedule_slot == datetime(2026, 3, 2, 6, 0, tzinfo=dt_timezone.utc)
    assert state.next_run == datetime(2026, 3, 3, 6, 0, tzinfo=dt_timezone.utc)


def test_slots_missed_while_nothing_ticked_make_one_run(make):
    product = make("a", schedule="*/5 * * * *")
    assert triggers.start_scheduled_runs(now=T0 + timedelta(hours=2)) == 1
    assert Run.objects.filter(product=product).count() == 1
    assert TriggerState.objects.get(product=product).next_run == datetime(2026, 3, 2, 8, 0, tzinfo=dt_timezone.utc)


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_at_the_same_moment_start_one_run(make):
    product = make("a", schedule="0 6 * * *")
    barrier, counts = threading.Barrier(4), []

    def tick():
        try:
            barrier.wait()
            counts.append(triggers.start_scheduled_runs(now=T0 + timedelta(seconds=20)))
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == [0, 0, 0, 1]
    assert Run.objects.filter(product=product).count() == 1


def test_a_changed_schedule_never_runs_the_slot_already_started_again(make):
    product = make("a", schedule="0 6 * * *")
    triggers.start_scheduled_runs(now=T0 + timedelta(seconds=15))
    later = T0 + timedelta(seconds=30)
    triggers.store(product, triggers.Config(schedule="0 6,18 * * *"), version=product.approved_version, now=later)
    assert TriggerState.objects.get(product=product).next_run == datetime(2026, 3, 2, 18, 0, tzinfo=dt_timezone.utc)
    triggers.store(product, triggers.Config(), version=product.approved_version, now=later)
    assert TriggerState.objects.get(product=product).next_run is None
    assert triggers.start_scheduled_runs(now=T0 + timedelta(days=2)) == 0


def test_a_suspended_products_slots_pass_without_a_run(make):
    product = make("a", schedule="0 6 * * *", suspended=True)
    assert triggers.start_scheduled_runs(now=T0 + timedelta(seconds=15)) == 0
    assert not Run.objects.filter(product=product).exists()
    assert triggers.summary(product)["paused"] == "suspended"
    assert triggers.summary(product)["next_run"] is None
