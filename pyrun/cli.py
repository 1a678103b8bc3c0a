"""The `pyrun` command: click commands only. Each parses its flags into a
spec, calls one function below it, and maps errors to Docker's exit codes
(125 pyrun's own error, 126/127 the command, 128+N a signal)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import click

from pyrun import __version__, caps, cgroups, config, runtime
from pyrun.errors import PyrunError, strerror
from pyrun.image import DEFAULT_PLATFORM, PULL_POLICIES, Catalog
from pyrun.state import DEFAULT_ROOT, DEFAULT_RUNROOT, Store, owner_alive


class Context:
    def __init__(self, root: Path, runroot: Path) -> None:
        self.root = root
        self.runroot = runroot

    def images(self, pull: str = "missing", platform: str = DEFAULT_PLATFORM) -> Catalog:
        return Catalog(self.root, pull, platform)

    def store(self) -> Store:
        return Store(self.root, self.runroot)


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(path_type=Path), envvar="PYRUN_ROOT",
              default=DEFAULT_ROOT, show_default=True,
              help="Directory for pyrun's state (also PYRUN_ROOT).")
@click.option("--runroot", type=click.Path(path_type=Path), envvar="PYRUN_RUNROOT",
              default=DEFAULT_RUNROOT, show_default=True,
              help="Directory for runtime files: mount points, generated /etc files "
                   "(also PYRUN_RUNROOT).")
@click.version_option(__version__, prog_name="pyrun")
@click.pass_context
def cli(ctx: click.Context, root: Path, runroot: Path) -> None:
    """pyrun: run Linux containers, no daemon. `pyrun run --trace ...` shows how."""
    ctx.obj = Context(root.absolute(), runroot.absolute())


@cli.command(context_settings={"allow_interspersed_args": False, "help_option_names": ["--help"]})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--rootfs", type=click.Path(path_type=Path),
              help="Run on this directory (through an overlay; it is not modified).")
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("--rm", "remove", is_flag=True, help="Remove the container when it exits.")
@click.option("--name", help="Name the container.")
@click.option("-e", "--env", multiple=True, help="Set KEY=VALUE (or pass KEY from pyrun's env).")
@click.option("--env-file", multiple=True, help="Read KEY=VALUE lines from a file.")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.option("-u", "--user", help="NAME|UID[:GROUP|GID] to run as.")
@click.option("--entrypoint", help="Override the image's ENTRYPOINT ('' clears it).")
@click.option("-h", "--hostname", help="Container hostname (default: the short id).")
@click.option("--read-only", is_flag=True, help="Mount the root filesystem read-only.")
@click.option("--tmpfs", multiple=True, help="Mount a tmpfs: PATH[:OPTIONS].")
@click.option("-v", "--volume", multiple=True, help="Bind mount HOSTDIR:CTRDIR[:ro].")
@click.option("--userns", default="host", show_default=True,
              help="host, or private: a new user namespace, root mapped to a host range.")
@click.option("--pid", "pid_mode", default="private", show_default=True, help="host|private")
@click.option("--uts", "uts_mode", default="private", show_default=True, help="host|private")
@click.option("--ipc", "ipc_mode", default="private", show_default=True, help="host|private")
@click.option("--cgroupns", "cgroupns_mode", default="private", show_default=True,
              help="host|private")
@click.option("--network", "--net", "network", default="none", show_default=True,
              help="none (own loopback only) or host.")
@click.option("--cap-add", multiple=True, help="Add a capability (or ALL).")
@click.option("--cap-drop", multiple=True, help="Drop a capability (or ALL).")
@click.option("--privileged", is_flag=True, help="All capabilities, no masked paths.")
@click.option("--security-opt", multiple=True, help="no-new-privileges[:true|false]")
@click.option("--init", is_flag=True, help="Run pyrun-init as PID 1 (reaps zombies).")
@click.option("-m", "--memory", help="Memory limit (e.g. 512m): memory.max.")
@click.option("--memory-swap", help="Memory plus swap limit (-1: unlimited swap).")
@click.option("--memory-reservation", help="Soft memory limit: memory.low.")
@click.option("--cpus", help="CPUs (e.g. 0.5): cpu.max.")
@click.option("-c", "--cpu-shares", type=int, help="Relative CPU weight: cpu.weight.")
@click.option("--cpuset-cpus", help="CPUs allowed (0-2,4): cpuset.cpus.")
@click.option("--cpuset-mems", help="Memory nodes allowed: cpuset.mems.")
@click.option("--pids-limit", type=int, help="Maximum tasks (<=0: unlimited): pids.max.")
@click.option("--blkio-weight", type=int, help="Block IO weight 10-1000: io.weight.")
@click.option("--device-read-bps", multiple=True, help="/dev/X:RATE read bytes/s: io.max.")
@click.option("--device-write-bps", multiple=True, help="/dev/X:RATE write bytes/s: io.max.")
@click.option("--device-read-iops", multiple=True, help="/dev/X:N read IO/s: io.max.")
@click.option("--device-write-iops", multiple=True, help="/dev/X:N write IO/s: io.max.")
@click.option("--oom-kill-disable", is_flag=True,
              help="Not available with cgroup v2 (ignored with a warning, as Docker does).")
@click.option("--cgroup-parent", default="pyrun", show_default=True,
              help="Parent group, relative to the cgroup v2 root.")
@click.option("--trace", is_flag=True, help="Explain every kernel-level step on stderr.")
@click.option("--pull", "pull_policy", type=click.Choice(PULL_POLICIES), default="missing",
              show_default=True, help="Pull the image from its registry: if missing, always "
              "or never.")
@click.option("--platform", default=DEFAULT_PLATFORM, show_default=True,
              help="OS/ARCH[/VARIANT] to pull from a multi-platform image.")
@pass_ctx
def run(ctx: Context, /, args: tuple[str, ...], rootfs: Path | None, **opts: Any) -> None:
    """Run a command in a new container: IMAGE [COMMAND [ARG...]], or with
    --rootfs DIR: COMMAND [ARG...]."""
    if rootfs is None and not args:
        raise click.UsageError("run needs an image (or --rootfs DIR)")
    image, command = (None, args) if rootfs is not None else (args[0], args[1:])
    env: list[str] = []
    for path in opts["env_file"]:
        env += config.read_env_file(path)
    env += config.parse_env(opts["env"])
    no_new_privs = False
    for opt in opts["security_opt"]:
        key, _, value = opt.partition(":" if ":" in opt else "=")
        if key != "no-new-privileges" or value not in ("", "true", "false"):
            raise PyrunError(f"unsupported --security-opt {opt!r}")
        no_new_privs = value != "false"
    user_ns = config.parse_userns(opts["userns"])
    if opts["oom_kill_disable"]:
        click.echo("pyrun: warning: --oom-kill-disable is not supported by cgroup v2; "
                   "ignored", err=True)
    devices = tuple((f"--device-{kind.replace('_', '-')}", kind.split("_")[1], value)
                    for kind in ("read_bps", "write_bps", "read_iops", "write_iops")
                    for value in opts[f"device_{kind}"])
    limits = cgroups.parse_limits(
        memory=opts["memory"], memory_swap=opts["memory_swap"],
        memory_reservation=opts["memory_reservation"], cpus=opts["cpus"],
        cpu_shares=opts["cpu_shares"], cpuset_cpus=opts["cpuset_cpus"],
        cpuset_mems=opts["cpuset_mems"], pids_limit=opts["pids_limit"],
        blkio_weight=opts["blkio_weight"],
        devices=tuple((flag, ("r" if "read" in flag else "w") + key, value)
                      for flag, key, value in devices))
    spec = config.ContainerSpec(
        image=image,
        rootfs=rootfs,
        command=tuple(command),
        entrypoint=opts["entrypoint"],
        env=tuple(env),
        workdir=config.check_container_path(opts["workdir"], "workdir")
        if opts["workdir"] else None,
        user=opts["user"],
        hostname=opts["hostname"],
        name=config.check_name(opts["name"]) if opts["name"] else None,
        remove=opts["remove"],
        read_only=opts["read_only"],
        tmpfs=tuple(config.parse_tmpfs(t) for t in opts["tmpfs"]),
        volumes=tuple(config.parse_volume(v) for v in opts["volume"]),
        namespaces=config.Namespaces(
            pid=config.parse_ns_mode("--pid", opts["pid_mode"]),
            uts=config.parse_ns_mode("--uts", opts["uts_mode"]),
            ipc=config.parse_ns_mode("--ipc", opts["ipc_mode"]),
            net=config.parse_network(opts["network"]),
            cgroup=config.parse_ns_mode("--cgroupns", opts["cgroupns_mode"]),
            user=user_ns,
        ),
        userns_map=config.subid_range() if user_ns else None,
        cap_add=opts["cap_add"],
        cap_drop=opts["cap_drop"],
        privileged=opts["privileged"],
        no_new_privileges=no_new_privs,
        interactive=opts["interactive"],
        tty=opts["tty"],
        init=opts["init"],
        trace=opts["trace"],
        limits=limits,
        cgroup_parent=opts["cgroup_parent"],
    )
    # Checked before anything is created: a typo in --cap-add costs nothing.
    caps.resolve(spec.cap_add, spec.cap_drop, spec.privileged)
    if spec.tty and not spec.interactive and sys.stdin.isatty():
        pass  # like docker: a pty without stdin attached is allowed
    images = ctx.images(opts["pull_policy"], opts["platform"])
    sys.exit(runtime.Runtime(ctx.store(), images).run(spec))


@cli.command()
@click.argument("server")
@click.option("-u", "--username", help="User name (prompted for if missing).")
@click.option("-p", "--password", help="Password (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
def login(server: str, username: str | None, password: str | None,
          password_stdin: bool) -> None:
    """Log in to a registry: check the credentials, keep them in
    ~/.docker/config.json."""
    from pyrun.image import registry

    if password_stdin:
        if password:
            raise PyrunError("--password and --password-stdin exclude each other")
        password = sys.stdin.read().rstrip("\n")
    if not username:
        username = click.prompt("Username")
    if not password:
        password = click.prompt("Password", hide_input=True)
    base = registry.RegistryConfig.load().endpoints(server)[-1]
    client = registry.Client(server, (username, password), base=base)
    try:
        client.ping()
    finally:
        client.close()
    registry.store_credentials(server, username, password)
    click.echo("Login Succeeded")


@cli.command()
@click.argument("server")
def logout(server: str) -> None:
    """Forget the credentials of a registry."""
    from pyrun.image import registry

    registry.store_credentials(server, None, None)
    click.echo(f"Removing login credentials for {server}")


@cli.group()
def image() -> None:
    """Manage the images of the store."""


def _store(ctx: Context) -> Any:
    from pyrun.image.store import ImageStore

    return ImageStore(ctx.root)


def _images_in_use(ctx: Context) -> dict[str, str]:
    """Manifest digest -> a container that uses it."""
    used: dict[str, str] = {}
    for c in ctx.store().containers():
        doc = c.read()
        digest = doc.get("Config", {}).get("ImageManifest")
        if digest:
            used.setdefault(digest, doc.get("Name", c.short_id))
    return used


@image.command("pull")
@click.argument("name")
@click.option("-q", "--quiet", is_flag=True, help="Print only the manifest digest.")
@click.option("--platform", default=DEFAULT_PLATFORM, show_default=True,
              help="OS/ARCH[/VARIANT] to pull from a multi-platform image.")
@pass_ctx
def pull(ctx: Context, name: str, quiet: bool, platform: str) -> None:
    """Pull an image from its registry into the store."""
    from pyrun.image.progress import Progress
    from pyrun.image.reference import parse
    from pyrun.image.store import ImageStore

    store = ImageStore(ctx.root, progress=Progress(quiet=quiet))
    digest = store.pull(name, platform)
    if quiet:
        click.echo(digest)
    else:
        click.echo(f"Digest: {digest}")
        click.echo(str(parse(name)))


@image.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only image ids.")
@click.option("--digests", is_flag=True, help="Show manifest digests.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@pass_ctx
def images(ctx: Context, quiet: bool, digests: bool, fmt: str) -> None:
    """List the images in the store."""
    store = _store(ctx)
    rows = []
    for name_tag, digest in store.images():
        name, _, tag = name_tag.rpartition(":")
        info = store.inspect(digest)
        rows.append({"Repository": name.removeprefix("docker.io/library/"), "Tag": tag,
                     "Digest": digest, "ID": info["Id"], "Created": info["Created"],
                     "Size": info["Size"]})
    if quiet:
        for row in rows:
            click.echo(row["ID"][7:19])
        return
    if fmt == "json":
        for row in rows:
            click.echo(json.dumps(row, sort_keys=True))
        return
    header = ["REPOSITORY", "TAG"] + (["DIGEST"] if digests else []) + [
        "IMAGE ID", "CREATED", "SIZE"]
    table = [header]
    for row in rows:
        table.append([row["Repository"], row["Tag"]] + ([row["Digest"]] if digests else []) + [
            row["ID"][7:19], _age(row["Created"][:19] + "Z") if row["Created"] else "",
            f"{row['Size'] / 1e6:.2f}MB"])
    _print_table(table)


def _print_table(table: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        click.echo("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


@image.command("rm")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Remove even if a container uses it.")
@pass_ctx
def rmi(ctx: Context, names: tuple[str, ...], force: bool) -> None:
    """Remove images: their names, then the data nothing else uses."""
    store = _store(ctx)
    used = _images_in_use(ctx)
    failed = False
    for name in names:
        try:
            digest, keys = store.find(name)
            if digest in used and not force:
                raise PyrunError(f"conflict: unable to remove {name}: container {used[digest]} "
                                 "uses it (remove the container, or use -f)")
            store.untag(keys)
            for key in keys:
                click.echo(f"Untagged: {key}")
        except PyrunError as e:
            click.echo(f"pyrun: {e}", err=True)
            failed = True
    blobs, layers = store.prune(set(used))
    if blobs or layers:
        click.echo(f"Deleted: {blobs} blobs, {layers} layers")
    if failed:
        sys.exit(1)


@image.command("prune")
@pass_ctx
def image_prune(ctx: Context) -> None:
    """Delete the blobs and layers that no image or container uses."""
    blobs, layers = _store(ctx).prune(set(_images_in_use(ctx)))
    click.echo(f"Deleted: {blobs} blobs, {layers} layers")


@image.command("inspect")
@click.argument("names", nargs=-1, required=True)
@pass_ctx
def image_inspect(ctx: Context, names: tuple[str, ...]) -> None:
    """Details of images, as a JSON list (Docker's fields)."""
    store = _store(ctx)
    click.echo(json.dumps([store.inspect(store.find(n)[0]) for n in names], indent=2))


@image.command("history")
@click.argument("name")
@click.option("--no-trunc", is_flag=True, help="Do not shorten CREATED BY.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@pass_ctx
def history(ctx: Context, name: str, no_trunc: bool, fmt: str) -> None:
    """The layers of an image: how each was made, and its size."""
    store = _store(ctx)
    rows = store.history(store.find(name)[0])
    if fmt == "json":
        for row in rows:
            click.echo(json.dumps(row, sort_keys=True))
        return
    table = [["CREATED", "CREATED BY", "SIZE", "COMMENT"]]
    for row in rows:
        by = row["CreatedBy"]
        if not no_trunc and len(by) > 45:
            by = by[:44] + "…"
        table.append([_age(row["Created"][:19] + "Z") if row["Created"] else "", by,
                      f"{row['Size'] / 1e6:.2f}MB", row["Comment"]])
    _print_table(table)


@image.command("import")
@click.argument("source")
@click.argument("name", default="")
@click.option("-c", "--change", "changes", multiple=True,
              help='Dockerfile instruction for the config: CMD ["sh"], ENV K=V, WORKDIR, USER.')
@pass_ctx
def image_import(ctx: Context, source: str, name: str, changes: tuple[str, ...]) -> None:
    """Make a one-layer image from a root filesystem tar (FILE, or - for
    stdin), as `docker import` does; prints its id."""
    from pyrun.image import apply_changes

    config = apply_changes(changes)
    store = _store(ctx)
    target = name or f"imported-{os.getpid()}:latest"
    if source == "-":
        digest = store.import_tar(sys.stdin.buffer, target, config)
    else:
        try:
            with open(source, "rb") as f:
                digest = store.import_tar(f, target, config)
        except FileNotFoundError:
            raise PyrunError(f"import: {source}: no such file") from None
    click.echo(store.config_digest(digest))


@image.command("save")
@click.argument("names", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Write to this file (default: stdout, which must not be a terminal).")
@pass_ctx
def save(ctx: Context, names: tuple[str, ...], output: Path | None) -> None:
    """Write images to a tar: an OCI layout with Docker's manifest.json."""
    from pyrun.image.layout import save as save_images
    from pyrun.state import atomic_file

    store = _store(ctx)
    if output is None:
        if sys.stdout.isatty():
            raise PyrunError("save: refusing to write a tar to a terminal; use -o FILE")
        save_images(store, list(names), sys.stdout.buffer)
        return
    with atomic_file(output) as f:
        save_images(store, list(names), f)


@image.command("load")
@click.option("-i", "--input", "source", type=click.Path(path_type=Path),
              help="Read this tar (or OCI layout directory); default stdin.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@pass_ctx
def load(ctx: Context, source: Path | None, quiet: bool) -> None:
    """Load images from a tar: an OCI layout or a `docker save` archive."""
    from pyrun.image.layout import load as load_images
    from pyrun.image.progress import Progress
    from pyrun.image.store import ImageStore

    store = ImageStore(ctx.root, progress=Progress(quiet=quiet))
    if source is not None and not source.exists():
        raise PyrunError(f"load: {source}: no such file")
    for name in load_images(store, source if source is not None else sys.stdin.buffer):
        if not quiet:
            click.echo(f"Loaded image: {name}")


@image.command("tag")
@click.argument("source")
@click.argument("target")
@pass_ctx
def tag(ctx: Context, source: str, target: str) -> None:
    """Give an image another name: TARGET refers to SOURCE."""
    _store(ctx).tag_as(source, target)


# Docker's short forms.
cli.add_command(pull, "pull")
cli.add_command(images, "images")
cli.add_command(rmi, "rmi")
cli.add_command(history, "history")
cli.add_command(tag, "tag")
cli.add_command(image_import, "import")
cli.add_command(save, "save")
cli.add_command(load, "load")


def _age(created: str) -> str:
    try:
        then = time.mktime(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    except ValueError:
        return created
    secs = int(time.time() - then)
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if secs >= size:
            return f"{secs // size} {unit} ago"
    return f"{secs} seconds ago"


def _status(state: dict[str, Any]) -> str:
    status = state.get("Status", "unknown")
    if status == "exited":
        return f"Exited ({state.get('ExitCode', 0)})"
    if status == "running":
        return "Up"
    if status == "paused":
        return "Up (Paused)"
    return str(status).capitalize()


@cli.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Show all containers.")
@click.option("-q", "--quiet", is_flag=True, help="Only ids.")
@click.option("--no-trunc", is_flag=True, help="Full ids and commands.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@pass_ctx
def ps(ctx: Context, show_all: bool, quiet: bool, no_trunc: bool, fmt: str) -> None:
    """List containers (running ones, or all with -a)."""
    rows = []
    for c in ctx.store().containers():
        doc = c.read()
        if not show_all and doc.get("State", {}).get("Status") not in ("running", "paused"):
            continue
        rows.append(doc)
    if quiet:
        for doc in rows:
            click.echo(doc["Id"] if no_trunc else doc["Id"][:12])
        return
    if fmt == "json":
        for doc in rows:
            click.echo(json.dumps(doc, sort_keys=True))
        return
    table = [("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES")]
    for doc in rows:
        cmd = " ".join(doc.get("Config", {}).get("Cmd", []))
        if not no_trunc and len(cmd) > 20:
            cmd = cmd[:19] + "…"
        table.append((doc["Id"] if no_trunc else doc["Id"][:12],
                      doc.get("Config", {}).get("Image", ""), f'"{cmd}"',
                      _age(doc.get("Created", "")), _status(doc.get("State", {})),
                      doc.get("Name", "")))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        click.echo("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


@cli.command()
@click.argument("containers", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Kill a running container first.")
@pass_ctx
def rm(ctx: Context, containers: tuple[str, ...], force: bool) -> None:
    """Remove containers."""
    store = ctx.store()
    failed = False
    for ref in containers:
        try:
            c = store.find(ref)
            state = c.read().get("State", {})
            if state.get("Status") == "running" and owner_alive(state.get("Owner", {})):
                if not force:
                    raise PyrunError(f"container {ref} is running: stop it or use -f")
                pid = int(state.get("Pid", 0))
                if pid > 0:
                    with suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            runtime.remove_container(c)
            click.echo(ref)
        except PyrunError as e:
            click.echo(f"pyrun: {e}", err=True)
            failed = True
    if failed:
        sys.exit(1)


@cli.command()
@click.argument("container")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Write to this file (default: stdout, which must not be a terminal).")
@pass_ctx
def export(ctx: Context, container: str, output: Path | None) -> None:
    """A container's filesystem as a flat tar (pyrun import reads it back)."""
    from pyrun.state import atomic_file

    c = ctx.store().find(container)
    if output is None:
        if sys.stdout.isatty():
            raise PyrunError("export: refusing to write a tar to a terminal; use -o FILE")
        runtime.export_container(c, sys.stdout.buffer)
        return
    with atomic_file(output) as f:
        runtime.export_container(c, f)


def _running(ctx: Context, refs: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """(name, state) of running containers: the given ones, or all."""
    store = ctx.store()
    found = [store.find(r) for r in refs] if refs else store.containers()
    out = []
    for c in found:
        doc = c.read()
        state = doc.get("State", {})
        if state.get("Status") in ("running", "paused") and owner_alive(state.get("Owner", {})):
            out.append((doc.get("Name", c.short_id), state))
        elif refs:
            raise PyrunError(f"container {doc.get('Name', c.short_id)} is not running")
    return out


def _cgroup_of(name: str, state: dict[str, Any]) -> cgroups.Cgroup:
    path = state.get("CgroupPath")
    if not path:
        raise PyrunError(f"container {name} has no cgroup (this host mounts no cgroup v2)")
    return cgroups.load(path)


def _mib(n: int | float | None) -> str:
    return "--" if n is None else f"{n / (1 << 20):.1f}MiB"


@cli.command()
@click.argument("containers", nargs=-1)
@click.option("--no-stream", is_flag=True, help="Print once instead of every second.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@pass_ctx
def stats(ctx: Context, containers: tuple[str, ...], no_stream: bool, fmt: str) -> None:
    """Resource usage of running containers, read from their cgroups."""
    # CPU % needs two samples: take a first one a quarter second earlier.
    prev: dict[str, tuple[float, int]] = {
        name: (time.monotonic(), int(cgroups.stats(_cgroup_of(name, state))["cpu_usage_usec"]
                                     or 0))
        for name, state in _running(ctx, containers)}
    time.sleep(0.25)
    while True:
        rows: list[dict[str, Any]] = []
        for name, state in _running(ctx, containers):
            s = cgroups.stats(_cgroup_of(name, state))
            now, used = time.monotonic(), int(s["cpu_usage_usec"] or 0)
            last = prev.get(name)
            # CPU % over the last interval, like docker stats: 100% = one CPU.
            cpu = (used - last[1]) / ((now - last[0]) * 1e4) if last and now > last[0] else None
            prev[name] = (now, used)
            limit = s["memory_limit"]
            usage = s["memory_usage"]
            rows.append({"Name": name, "CPUPerc": cpu, **s,
                         "MemPerc": usage / limit * 100 if usage is not None and limit else None})
        if fmt == "json":
            for row in rows:
                click.echo(json.dumps(row, sort_keys=True))
        else:
            click.echo(f"{'NAME':<24} {'CPU %':>7} {'MEM USAGE / LIMIT':>24} {'MEM %':>7} "
                       f"{'PIDS':>5} {'BLOCK I/O':>20}")
            for r in rows:
                cpu_txt = "--" if r["CPUPerc"] is None else f"{r['CPUPerc']:.2f}%"
                mem_txt = "--" if r["MemPerc"] is None else f"{r['MemPerc']:.2f}%"
                click.echo(f"{r['Name']:<24} {cpu_txt:>7} "
                           f"{_mib(r['memory_usage']) + ' / ' + _mib(r['memory_limit']):>24} "
                           f"{mem_txt:>7} {r['pids'] if r['pids'] is not None else '--':>5} "
                           f"{_mib(r['io_read_bytes']) + ' / ' + _mib(r['io_write_bytes']):>20}")
        if no_stream:
            return
        time.sleep(1)


def _freeze(ctx: Context, containers: tuple[str, ...], frozen: bool) -> None:
    for ref in containers:
        name, state = _running(ctx, (ref,))[0]
        _cgroup_of(name, state).freeze(frozen)
        ctx.store().find(ref).update(Status="paused" if frozen else "running")
        click.echo(ref)


@cli.command()
@click.argument("containers", nargs=-1, required=True)
@pass_ctx
def pause(ctx: Context, containers: tuple[str, ...]) -> None:
    """Freeze every process of containers (cgroup.freeze)."""
    _freeze(ctx, containers, True)


@cli.command()
@click.argument("containers", nargs=-1, required=True)
@pass_ctx
def unpause(ctx: Context, containers: tuple[str, ...]) -> None:
    """Thaw paused containers."""
    _freeze(ctx, containers, False)


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_ctx
def info(ctx: Context, fmt: str) -> None:
    """What this host offers pyrun: cgroup version, controllers, limits."""
    host = cgroups.host_info()
    doc = {
        "Version": __version__,
        "Kernel": os.uname().release,
        "Root": str(ctx.root),
        "RunRoot": str(ctx.runroot),
        "CgroupVersion": host.version,
        "CgroupMount": str(host.mount) if host.mount else None,
        "CgroupControllers": list(host.controllers),
        "LimitsEnforceable": host.enforceable,
    }
    if fmt == "json":
        click.echo(json.dumps(doc, indent=2))
        return
    for key, value in doc.items():
        if isinstance(value, list):
            value = " ".join(value) or "(none)"
        click.echo(f"{key}: {value}")
    if not host.enforceable:
        click.echo(f"Note: resource limits cannot be enforced here; {cgroups.UNIFIED_FIX}")


class Terminated(BaseException):
    """SIGTERM/SIGHUP outside a container's run: unwind so that every
    `finally` (unmount, cgroup removal) runs, then exit 128+N."""

    def __init__(self, sig: int) -> None:
        self.sig = sig


def _terminate(sig: int, frame: object) -> None:
    raise Terminated(sig)


def main() -> None:
    """Entry point: click's own usage errors exit 125 like Docker's, and no
    error ever shows a traceback."""
    # While a container runs, runtime.SignalForwarder takes these over.
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        cli.main(standalone_mode=False, prog_name="pyrun")
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.format_message())
        sys.exit(0)
    except click.exceptions.UsageError as e:
        click.echo(f"pyrun: {e.format_message()}", err=True)
        if e.ctx is not None:
            click.echo(f"See '{e.ctx.command_path} --help'.", err=True)
        sys.exit(125)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except PyrunError as e:
        click.echo(f"pyrun: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Terminated as e:
        sys.exit(128 + e.sig)
    except OSError as e:
        # Anything the host refused that no layer turned into a PyrunError.
        where = f" {e.filename}" if e.filename else ""
        click.echo(f"pyrun:{where}: {strerror(e)}", err=True)
        sys.exit(125)
    except BrokenPipeError:
        sys.exit(141)


if __name__ == "__main__":
    main()
