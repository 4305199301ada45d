"""The terraform adapter stops a command at the job's deadline or on cancel, and leaves no process:
real Terraform waiting for a state lock that the test holds."""
import time

import psycopg
import pytest

from provisioning import services, terraform
from tests.provisioning.test_provider_adoption import group_members, leftovers, pg_product  # noqa: F401  (fixtures)
from tests.provisioning.test_local_provider import admin_dsn  # noqa: F401  (fixture)


@pytest.fixture
def state_lock_held(pg_product, settings):
    """Every state lock of the pg backend takes advisory lock -1 first: held here, terraform waits."""
    settings.TERRAFORM_LOCK_TIMEOUT = "10m"
    with psycopg.connect(services.state_conn_str(), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(-1)")
        yield pg_product
        holder.execute("SELECT pg_advisory_unlock(-1)")


def test_a_command_that_runs_past_the_jobs_deadline_is_stopped_with_a_clear_error(state_lock_held):
    spec, tf = state_lock_held
    groups, seen = [], []
    slow = terraform.Terraform(tf.workdir, workspace=spec.slug, extra_env=tf.env, deadline=2,
                               on_start=groups.append, on_line=seen.append)
    started = time.monotonic()

    with pytest.raises(terraform.TerraformError) as raised:
        slow.plan("slow.tfplan")

    assert str(raised.value) == "terraform plan ran past its deadline (2 s) and was stopped"
    assert raised.value.permanent is False
    assert time.monotonic() - started < 10  # interrupted, terraform gave up waiting for the lock at once
    assert any("Acquiring state lock" in line for line in seen)
    assert len(groups) == 1 and group_members(groups[0]) == []


def test_the_deadline_covers_all_of_a_jobs_commands_together(state_lock_held):
    spec, tf = state_lock_held
    spent = terraform.Terraform(tf.workdir, workspace=spec.slug, extra_env=tf.env, deadline=0)

    with pytest.raises(terraform.TerraformError, match="ran past its deadline"):
        spent.plan("late.tfplan")


def test_a_cancel_stops_terraform_and_raises_cancelled(state_lock_held):
    spec, tf = state_lock_held
    asked = []
    cancelled = terraform.Terraform(tf.workdir, workspace=spec.slug, extra_env=tf.env,
                                    should_cancel=lambda: asked.append(1) or len(asked) > 2)

    with pytest.raises(terraform.Cancelled):
        cancelled.apply()
