"""`Terraform.apply_if`: Terraform's own question answered from the plan it printed, before any change.

A stand-in terraform (a script printing Terraform 1.0's human plan, then asking) records the answer;
the real path (an amendment applied in one run) is in tests/e2e/test_products_live_on.py.
"""
import stat
from dataclasses import replace

import pytest

from provisioning import terraform

PLAN = """Terraform will perform the following actions:

  # module.compute.localplatform_compute.this will be updated in-place
  ~ resource "localplatform_compute" "this" {{
        # (3 unchanged attributes hidden)
    }}
{extra}
Plan: {add} to add, {change} to change, {remove} to destroy.

Do you want to perform these actions in workspace "p"?
  Only 'yes' will be accepted to approve.

"""

SCRIPT = """#!/bin/sh
cat <<'PLAN'
{plan}PLAN
printf '  Enter a value: '
read answer
echo "$answer" > "{record}"
if [ "$answer" = "yes" ]; then echo "Apply complete! Resources: 0 added, 1 changed, 0 destroyed."; exit 0; fi
echo "Apply cancelled."; exit 1
"""


@pytest.fixture
def fake_terraform(tmp_path):
    def make(extra: str, add: int, change: int, remove: int):
        record = tmp_path / "answer"
        script = tmp_path / "terraform"
        plan = PLAN.format(extra=extra, add=add, change=change, remove=remove)
        script.write_text(SCRIPT.format(plan=plan, record=record))
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        tf = terraform.Terraform(tmp_path, workspace="p")
        tf.toolchain = replace(tf.toolchain, binary=script)
        return tf, record
    return make


def test_an_in_place_update_is_applied(fake_terraform):
    tf, record = fake_terraform("", 0, 1, 0)

    plan, applied = tf.apply_if(lambda p: p.accounted_for and p.only_updates_in_place)

    assert applied and record.read_text() == "yes\n"
    assert plan.summary == {"add": 0, "change": 1, "destroy": 0}
    assert plan.changed_resources == ["update module.compute.localplatform_compute.this"]


@pytest.mark.parametrize("extra, counts", [
    ('\n  # module.storage.localplatform_storage.this must be replaced\n', (1, 1, 1)),
    ('\n  # module.pipeline.localplatform_pipeline.this will be destroyed\n', (0, 1, 1)),
])
def test_a_replacement_or_destroy_is_declined_before_any_change(fake_terraform, extra, counts):
    tf, record = fake_terraform(extra, *counts)

    plan, applied = tf.apply_if(lambda p: p.accounted_for and p.only_updates_in_place)

    assert not applied and record.read_text() == "no\n"


def test_a_revoked_grant_is_applied(fake_terraform):
    tf, record = fake_terraform('\n  # localplatform_grant.reads["orders-core"] will be destroyed\n', 0, 1, 1)

    _, applied = tf.apply_if(lambda p: p.accounted_for and p.only_updates_in_place)

    assert applied and record.read_text() == "yes\n"


def test_a_plan_whose_changes_were_not_all_read_is_declined(fake_terraform):
    tf, record = fake_terraform("", 1, 1, 1)  # the summary counts changes no header named

    _, applied = tf.apply_if(lambda p: p.accounted_for and p.only_updates_in_place)

    assert not applied and record.read_text() == "no\n"
