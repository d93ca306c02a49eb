#!/usr/bin/python3
"""Checks deploy/airflow/clickstream_backfill.py without Airflow (not in Debian).

1. The file compiles (syntax).
2. It is imported with small stand-ins for the two Airflow modules it may
   use (airflow.DAG and airflow.operators.bash.BashOperator; importing any
   other Airflow module fails): its DAG, tasks and dependencies are read.
3. With --run DS, each task's bash_command is rendered with Jinja2 as
   Airflow renders it (ds, macros.ds_add, ti.xcom_pull; undefined names are
   errors) and executed with bash in dependency order, in this process's
   environment (the local cluster's), the last line of stdout kept as the
   task's XCom. A task that exits non-zero fails the check.

Usage: airflow_dag_check.py DAG_FILE [--run YYYY-MM-DD]
"""
import datetime
import importlib.abc
import importlib.machinery
import os
import py_compile
import subprocess
import sys
import tempfile
import types

import jinja2


class StubDAG:
    current = None

    def __init__(self, dag_id, **kwargs):
        self.dag_id = dag_id
        self.kwargs = kwargs
        self.tasks = []

    def __enter__(self):
        StubDAG.current = self
        return self

    def __exit__(self, *exc):
        StubDAG.current = None


class StubBashOperator:
    def __init__(self, task_id, bash_command, **kwargs):
        if StubDAG.current is None:
            raise AssertionError(f"task {task_id} is not inside a DAG")
        self.task_id = task_id
        self.bash_command = bash_command
        self.kwargs = kwargs
        self.upstream = []
        StubDAG.current.tasks.append(self)

    def __rshift__(self, other):
        for o in other if isinstance(other, list) else [other]:
            o.upstream.append(self)
        return other


class OnlyStubs(importlib.abc.MetaPathFinder):
    """Refuses every airflow module but the stubbed ones."""

    def find_spec(self, name, path, target=None):
        if name == "airflow" or name.startswith("airflow."):
            raise ImportError(f"the DAG imports {name}: only airflow.DAG and "
                              "airflow.operators.bash.BashOperator are allowed")
        return None


def load_dag(path):
    with tempfile.TemporaryDirectory() as tmp:  # no __pycache__ in the source tree
        py_compile.compile(path, cfile=os.path.join(tmp, "dag.pyc"), doraise=True)
    airflow = types.ModuleType("airflow")
    airflow.DAG = StubDAG
    operators = types.ModuleType("airflow.operators")
    bash = types.ModuleType("airflow.operators.bash")
    bash.BashOperator = StubBashOperator
    airflow.operators = operators
    operators.bash = bash
    sys.modules.update({"airflow": airflow, "airflow.operators": operators, "airflow.operators.bash": bash})
    sys.meta_path.insert(0, OnlyStubs())
    namespace = {"__name__": "dag_under_test", "__file__": path}
    with open(path) as f:
        exec(compile(f.read(), path, "exec"), namespace)
    dags = [v for v in namespace.values() if isinstance(v, StubDAG)]
    if len(dags) != 1:
        raise AssertionError(f"expected one DAG in {path}, found {len(dags)}")
    return dags[0]


def ordered(tasks):
    done, out = set(), []
    while len(out) < len(tasks):
        ready = [t for t in tasks if t.task_id not in done and all(u.task_id in done for u in t.upstream)]
        if not ready:
            raise AssertionError("the DAG's dependencies form a cycle")
        for t in ready:
            done.add(t.task_id)
            out.append(t)
    return out


def render(command, ds, xcoms):
    def ds_add(day, days):
        return (datetime.date.fromisoformat(day) + datetime.timedelta(days=days)).isoformat()

    class TaskInstance:
        def xcom_pull(self, task_ids):
            if task_ids not in xcoms:
                raise AssertionError(f"xcom_pull of {task_ids}, which has not run")
            return xcoms[task_ids]

    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return env.from_string(command).render(ds=ds, ds_nodash=ds.replace("-", ""),
                                           macros=types.SimpleNamespace(ds_add=ds_add), ti=TaskInstance())


def main():
    if len(sys.argv) not in (2, 4) or (len(sys.argv) == 4 and sys.argv[2] != "--run"):
        sys.exit(__doc__)
    dag = load_dag(sys.argv[1])
    ids = [t.task_id for t in dag.tasks]
    print(f"dag {dag.dag_id}: tasks {ids}, schedule {dag.kwargs.get('schedule')}")
    if ids != ["backfill", "check_rows"] or [u.task_id for u in dag.tasks[1].upstream] != ["backfill"]:
        raise AssertionError(f"expected backfill >> check_rows, got {ids}")
    if dag.kwargs.get("schedule") != "@daily":
        raise AssertionError("the backfill is nightly: schedule='@daily'")
    if len(sys.argv) == 2:
        return
    ds = sys.argv[3]
    xcoms = {}
    for task in ordered(dag.tasks):
        script = render(task.bash_command, ds, xcoms)
        print(f"--- {task.task_id} ({ds})", flush=True)
        r = subprocess.run(["bash", "-c", script], stdout=subprocess.PIPE, text=True)
        sys.stdout.write(r.stdout)
        sys.stdout.flush()
        if r.returncode != 0:
            sys.exit(f"task {task.task_id} failed with exit code {r.returncode}")
        lines = [l for l in r.stdout.splitlines() if l.strip()]
        xcoms[task.task_id] = lines[-1] if lines else None
    print(f"dag {dag.dag_id} ran for {ds}")


if __name__ == "__main__":
    main()
