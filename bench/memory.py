"""Memory: what the platform adds to each idle instance, and the control plane at rest.

For each run image, two containers run side by side on the same slug: the instance as the
platform starts it (tini → supervisord → navi + the app) and the bare app (``start web`` as the
only process, no init). Once both answer and have idled, their cgroups are read: the difference
is the platform's share per instance. The control plane is every process under the platform's
own supervisord, summed (RSS, and PSS which counts shared pages once).
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

import docker

from bench import containers
from bench.harness import STACKS, Budget, delete_app, new_app
from bench.push_to_live import deploy_once
from bench.results import Figure
from bench.stats import summarize
from tests.integration.platform import Platform

MB = 1024**2
TARGET_MB = 20.0
FOUR_GB = 4 * 1024**3
IDLE_SECONDS = 3.0
SAMPLES = 3
CGROUP_MEMORY = Path("/sys/fs/cgroup/memory")


# ----------------------------------------------------------------------------- reading memory


def cgroup_memory(container_id: str, root: Path = CGROUP_MEMORY) -> tuple[int, int]:
    """``(usage_in_bytes, rss)`` of a container's cgroup (v1, cgroupfs driver)."""
    group = root / "docker" / container_id
    usage = int((group / "memory.usage_in_bytes").read_text())
    return usage, parse_memory_stat((group / "memory.stat").read_text())["rss"]


def parse_memory_stat(text: str) -> dict[str, int]:
    """``memory.stat`` as a dict of counters."""
    pairs = (line.split() for line in text.splitlines() if line.strip())
    return {key: int(value) for key, value in pairs}


def process_memory(pid: int) -> tuple[int, int]:
    """``(rss, pss)`` of one process in bytes, from ``/proc/<pid>/smaps_rollup``."""
    values = {"Rss:": 0, "Pss:": 0}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] in values:
            values[parts[0]] = int(parts[1]) * 1024
    return values["Rss:"], values["Pss:"]


def process_tree(root_pid: int) -> list[int]:
    """``root_pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def control_plane_memory(data_dir: Path) -> tuple[int, int, int]:
    """``(processes, rss, pss)`` of the platform's supervisord and everything under it."""
    pid_files = sorted(data_dir.rglob("supervisord.pid"))
    if not pid_files:
        raise RuntimeError(f"no supervisord.pid under {data_dir}")
    rss = pss = count = 0
    for pid in process_tree(int(pid_files[0].read_text().strip())):
        try:
            r, p = process_memory(pid)
        except OSError:
            continue
        rss, pss, count = rss + r, pss + p, count + 1
    return count, rss, pss


# ----------------------------------------------------------------------------- one pair


def idle_pair(platform: Platform, slug: containers.Slug, name: str) -> tuple[int, int, int, int]:
    """Supervised and bare containers of one slug, idle: (usage, rss) of each, medians."""
    client = docker.from_env()
    image = f"{platform.settings.image_prefix}run-{slug.stack}:latest"
    mnts = [containers.prepare_mnt(platform, slug, f"{name}-{side}") for side in ("sup", "bare")]
    started = []
    try:
        started.append(containers.start(client, image, mnts[0], f"{name}-sup"))
        started.append(
            containers.start(client, image, mnts[1], f"{name}-bare", ["start", "web"], bare=True)
        )
        for container, port in started:
            if not containers.wait_http(port, 60):
                raise RuntimeError(f"{container.name} did not answer")  # type: ignore[attr-defined]
        time.sleep(IDLE_SECONDS)
        samples = []
        for _ in range(SAMPLES):
            samples.append([cgroup_memory(c.id) for c, _ in started])  # type: ignore[attr-defined]
            time.sleep(0.5)
        sup_usage = statistics.median(s[0][0] for s in samples)
        sup_rss = statistics.median(s[0][1] for s in samples)
        bare_usage = statistics.median(s[1][0] for s in samples)
        bare_rss = statistics.median(s[1][1] for s in samples)
        return int(sup_usage), int(sup_rss), int(bare_usage), int(bare_rss)
    finally:
        for container, _ in started:
            containers.remove(container)
        for mnt in mnts:
            shutil.rmtree(mnt, ignore_errors=True)
        client.close()


# ----------------------------------------------------------------------------- the figure


def measure(platform: Platform, budget: Budget, work: Path, runs: int = 3) -> Figure:
    figure = Figure(
        title="memory",
        how=(
            "Per run image: the instance as the platform runs it (tini, supervisord, navi, the "
            "app) next to the bare app process alone, same slug, idle for "
            f"{IDLE_SECONDS:.0f} s; cgroup v1 `memory.stat` rss and `memory.usage_in_bytes` "
            "(which also counts page cache), in MB. Added = instance − bare. The control plane "
            "is every process of the platform's own supervisord at rest (API, worker, "
            "reconciler, collector, redis, router nginx)."
        ),
        header=["what", "instance rss", "bare app rss", "added rss", "added usage"],
        target=f"≤ {TARGET_MB:.0f} MB added per instance",
    )
    count, rss, pss = control_plane_memory(platform.data_dir)
    figure.add(f"control plane at rest ({count} processes)", f"{rss / MB:.0f} MB", "", "", "")
    figure.notes.append(f"control plane: RSS {rss / MB:.0f} MB, PSS {pss / MB:.0f} MB")
    added_rss_medians = []
    for stack in STACKS:
        budget.need(60)
        app = new_app(platform, f"mem-{stack[:2]}")
        try:
            deploy_once(platform, app, stack, "tarball", work / app)
            slug = containers.latest_slug(platform, app)
            pairs = [idle_pair(platform, slug, f"bench-mem-{app}-{n}") for n in range(runs)]
        finally:
            delete_app(platform, app)
            shutil.rmtree(work / app, ignore_errors=True)
        added_rss = summarize([(p[1] - p[3]) / MB for p in pairs])
        added_usage = summarize([(p[0] - p[2]) / MB for p in pairs])
        figure.add(
            f"{stack} instance",
            summarize([p[1] / MB for p in pairs]).text("MB", 1),
            summarize([p[3] / MB for p in pairs]).text("MB", 1),
            added_rss.text("MB", 1),
            added_usage.text("MB", 1),
        )
        added_rss_medians.append(added_rss.median)
        if stack == "static":
            per_instance = statistics.median(p[0] for p in pairs)
            figure.notes.append(
                f"idle static instances in 4 GB: {FOUR_GB // per_instance} "
                f"({per_instance / MB:.1f} MB usage each, page cache included)"
            )
    figure.met = max(added_rss_medians) <= TARGET_MB
    return figure
