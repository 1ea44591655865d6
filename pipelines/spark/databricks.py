"""Production: the Spark ingest on Databricks, orchestrated by Dagster through Pipes.

`load_config` reads deploy/databricks/pipes.yaml (or TRACKPLAN_DATABRICKS_CONFIG): ${VAR}s from the
environment (a missing one is an error naming it), and the `task` checked by the Databricks SDK's
own `jobs.SubmitTask` (a key it does not know, misspelled or misplaced, is an error rather than
silently dropped). `databricks_ingest_events` is the ingest multi-asset with the local assets' keys,
partitions and metadata; its body submits the task with `PipesDatabricksClient` and returns what
pipelines/spark/pipes_entry.py reports from the cluster. Needs the `databricks` extra.
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from ..ingest.assets import ingest_specs
from ..partitions import daily

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "databricks" / "pipes.yaml"
ENTRY = Path(__file__).with_name("pipes_entry.py")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class DatabricksConfigError(ValueError):
    user_error = True


@dataclass
class DatabricksConfig:
    host: str
    token_env: str
    task: object  # databricks.sdk.service.jobs.SubmitTask
    submit_args: dict = field(default_factory=dict)
    source: str = ""

    def client(self):
        """The PipesDatabricksClient of this workspace (no request is made until a run)."""
        from dagster_databricks import PipesDatabricksClient
        from databricks.sdk import WorkspaceClient

        token = os.environ.get(self.token_env)
        if not token:
            raise DatabricksConfigError(f"{self.source}: workspace.token_env: ${self.token_env} is not set")
        return PipesDatabricksClient(client=WorkspaceClient(host=self.host, token=token))


def _expand(node, env, where: str, source: str):
    if isinstance(node, dict):
        return {k: _expand(v, env, f"{where}.{k}" if where else k, source) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, env, f"{where}[{i}]", source) for i, v in enumerate(node)]
    if isinstance(node, str):

        def sub(m):
            if m.group(1) not in env:
                raise DatabricksConfigError(f"{source}: {where}: ${{{m.group(1)}}} is not set in the environment")
            return env[m.group(1)]

        return _VAR.sub(sub, node)
    return node


def load_config(path: str | Path | None = None, env: dict | None = None) -> DatabricksConfig:
    """The Databricks Pipes configuration, checked (DatabricksConfigError: one line naming the key)."""
    import yaml
    from databricks.sdk.service.jobs import SubmitTask

    path = Path(path or os.environ.get("TRACKPLAN_DATABRICKS_CONFIG") or DEFAULT_CONFIG)
    source = str(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DatabricksConfigError(f"{source}: {exc}".splitlines()[0]) from None
    unknown = set(doc) - {"workspace", "task", "submit_args"}
    if unknown:
        raise DatabricksConfigError(f"{source}: unknown top-level keys {sorted(unknown)}")
    doc = _expand(doc, os.environ if env is None else env, "", source)
    ws, task = doc.get("workspace") or {}, doc.get("task") or {}
    if not ws.get("host", "").startswith("https://"):
        raise DatabricksConfigError(f"{source}: workspace.host: an https:// workspace URL, got {ws.get('host')!r}")
    parsed = SubmitTask.from_dict(task)
    if parsed.as_dict() != task:  # SubmitTask.from_dict drops what it does not know
        extra = sorted(_paths(task) - _paths(parsed.as_dict()))
        raise DatabricksConfigError(f"{source}: task: not Databricks SubmitTask fields: {', '.join(extra)}")
    if parsed.spark_python_task is None or not parsed.spark_python_task.python_file:
        raise DatabricksConfigError(f"{source}: task.spark_python_task.python_file: the Pipes entry script is required")
    if parsed.new_cluster is None and not parsed.existing_cluster_id:
        raise DatabricksConfigError(f"{source}: task: new_cluster or existing_cluster_id is required")
    if parsed.new_cluster is not None:
        m = re.match(r"(\d+)\.", parsed.new_cluster.spark_version or "")
        if not m or int(m.group(1)) < 17:
            raise DatabricksConfigError(
                f"{source}: task.new_cluster.spark_version: {parsed.new_cluster.spark_version!r}; the Spark engine "
                "needs Spark 4 (Databricks Runtime 17 or later)"
            )
        if "TRACKPLAN_HASH_SALT" not in (parsed.new_cluster.spark_env_vars or {}):
            raise DatabricksConfigError(
                f"{source}: task.new_cluster.spark_env_vars.TRACKPLAN_HASH_SALT: the PII salt is required "
                "(a {{secrets/scope/key}} reference)"
            )
    return DatabricksConfig(
        host=ws["host"],
        token_env=ws.get("token_env", "DATABRICKS_TOKEN"),
        task=parsed,
        submit_args=doc.get("submit_args") or {},
        source=source,
    )


def _paths(node, prefix: str = "") -> set[str]:
    if isinstance(node, dict):
        return {p for k, v in node.items() for p in _paths(v, f"{prefix}.{k}" if prefix else k)} or {prefix}
    if isinstance(node, list):
        return {p for i, v in enumerate(node) for p in _paths(v, f"{prefix}[{i}]")} or {prefix}
    return {prefix}


@dg.multi_asset(
    specs=ingest_specs("databricks"),
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=False,
)
def databricks_ingest_events(context: dg.AssetExecutionContext, pipes_databricks: dg.ResourceParam[object]):
    """The ingest on a Databricks job cluster: pipelines/spark/pipes_entry.py through Dagster Pipes."""
    config = load_config()
    return pipes_databricks.run(context=context, task=config.task, submit_args=config.submit_args).get_results()


def databricks_resources(config: DatabricksConfig | None = None) -> dict:
    return {"pipes_databricks": (config or load_config()).client()}
