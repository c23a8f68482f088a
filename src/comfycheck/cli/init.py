"""`comfycheck init`: a profile for a deployment, from what the deployment says of itself.

It asks ComfyUI (directly) its version, its GPUs, its nodes and models; the public address (if given) whether it asks
for credentials and of what kind; and writes a profile that requires what the generation workflow needs. The profile
is validated as every run validates it before it is written; an existing file is never overwritten without --force.
It only reads: nothing is submitted, uploaded or freed. Destructive checks and load runs stay off in what it writes.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

import tomli_w

from .. import ComfycheckError, __version__, exitcodes
from ..comfy.client import ComfyClient, ComfyError
from ..comfy.system_stats import card_name, gpu_devices
from ..comfy.workflows import load_workflow, models_named
from ..config.auth import Credentials
from ..config.hosts import is_loopback
from ..config.paths import WORKFLOWS_DIR
from ..config.profile import load_profile

# the environment variables a written profile names for the proxy's secrets (the secrets never go in a profile)
SECRET_ENVS = {"bearer": {"token_env": "COMFYCHECK_TOKEN"}, "query": {"token_env": "COMFYCHECK_TOKEN"},
               "basic": {"user_env": "COMFYCHECK_USER", "password_env": "COMFYCHECK_PASSWORD"},
               "cookie": {"cookie_name": "session", "cookie_env": "COMFYCHECK_COOKIE"}}


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--comfyui-url", required=True, help="ComfyUI itself, directly (e.g. http://localhost:8188)")
    p.add_argument("--public-url", help="the public HTTPS address of the reverse proxy in front of it, if any")
    p.add_argument("--forge-url", help="Forge beside it, if any (e.g. http://localhost:7860)")
    p.add_argument("--ca-bundle", help="the CA the public address's certificate chains to, if not a public one")
    p.add_argument("--name", help="the profile's name (default: the public host's first label, else the backend's)")
    p.add_argument("--workflow", default="qwen_image_edit_2509.json",
                   help="the generation workflow whose nodes and models the profile requires (a file name in "
                        "fixtures/workflows, or a path)")
    p.add_argument("--write", dest="target", help="the profile file to write (default: --profile, else ./<name>.toml)")
    p.add_argument("--force", action="store_true", help="overwrite the file if it exists")


def init(args: argparse.Namespace) -> int:
    try:
        profile, found = ask(args)
        target = Path(args.target or args.profile or f"{profile['name']}.toml").expanduser().absolute()
        written = write(target, profile, found, force=args.force)
    except (ComfycheckError, OSError) as exc:
        print(f"comfycheck init: {exc}", file=sys.stderr)
        return exitcodes.CANNOT_RUN
    print("\n".join(f"  {line}" for line in found))
    print(f"comfycheck init: wrote {written}; check it, then: comfycheck smoke --profile {written}")
    return exitcodes.OK


def ask(args: argparse.Namespace) -> tuple[dict, list[str]]:
    """The profile's tables, and a line per thing found, from the deployment's own answers."""
    found: list[str] = []
    workflow_path = Path(args.workflow) if Path(args.workflow).parent != Path(".") else WORKFLOWS_DIR / args.workflow
    workflow = load_workflow(workflow_path)
    with ComfyClient(args.comfyui_url, timeout=10) as comfy:
        stats = comfy.system_stats()
        nodes = comfy.object_info()
        needed = models_named(workflow)
        present = {folder: set(comfy.models(folder)) for folder in needed}
    system = stats.get("system") or {}
    found.append(f"ComfyUI {system.get('comfyui_version', '?')} at {args.comfyui_url}, Python "
                 f"{str(system.get('python_version', '?')).split(' ')[0]}, torch {system.get('pytorch_version', '?')}")
    gpus = [card_name(d.get("name", "")) for d in gpu_devices(stats)]
    found.append(f"GPU: {', '.join(gpus)}" if gpus else "GPU: none (ComfyUI runs on the CPU)")
    used = sorted({n["class_type"] for n in workflow.values() if isinstance(n, dict) and "class_type" in n})
    missing_nodes = [n for n in used if n not in nodes]
    found.append(f"nodes: {len(nodes)} known; the workflow's {len(used)} "
                 + ("all there" if not missing_nodes else f"lack {', '.join(missing_nodes)}"))
    missing_models = [f"{folder}/{f}" for folder, files in needed.items() for f in files if f not in present[folder]]
    found.append("models: " + ("every model the workflow loads is installed" if not missing_models
                               else f"not installed: {', '.join(missing_models)}"))
    backend_host = urlsplit(args.comfyui_url).hostname or ""
    comfyui: dict = {"url": args.comfyui_url, "generation_workflow": workflow_path.name
                     if workflow_path.parent == WORKFLOWS_DIR else str(workflow_path.absolute()),
                     "models_installed": not missing_models, "required_nodes": used,
                     "must_not_be_public": is_loopback(backend_host), "required_models": needed}
    profile: dict = {"name": args.name or _name(args.public_url or args.comfyui_url),
                     "description": f"written by comfycheck init {__version__} from the deployment's answers",
                     "allow_destructive": False, "allow_load": False, "comfyui": comfyui}
    if args.public_url:
        profile["public"] = _public(args, found)
    if args.forge_url:
        profile["forge"] = {"url": args.forge_url}
    if gpus:
        profile["gpus"] = {"comfyui": gpus[0]}
    return profile, found


def _public(args: argparse.Namespace, found: list[str]) -> dict:
    """[public]: the address, and how its proxy asks for credentials (an unauthenticated GET /system_stats)."""
    ca = os.path.abspath(args.ca_bundle) if args.ca_bundle else None
    with ComfyClient(args.public_url, timeout=10, ca_bundle=ca, credentials=Credentials(), via_proxy=True) as public:
        resp = public.request("GET", "/system_stats", expect=(), follow_redirects=False)
    challenge = resp.headers.get("www-authenticate", "").split(" ", 1)[0].lower()
    if resp.status_code == 200:
        auth = "none"
    elif resp.status_code == 401 and challenge in ("basic", "bearer"):
        auth = challenge
    elif resp.status_code in (301, 302, 303, 307, 308):
        auth = "cookie"  # an auth portal: the session cookie it sets after a login
    else:
        raise ComfyError(f"GET {public.url('/system_stats')} without credentials: HTTP {resp.status_code} "
                         f"{('(' + challenge + ')') if challenge else ''}: cannot tell how the proxy authenticates; "
                         "write [public] auth by hand (docs/profiles.md)")
    found.append(f"public {args.public_url}: " + ("answers without credentials" if auth == "none" else
                 f"asks for credentials ({auth}); the profile names the environment variables that hold them: "
                 f"{', '.join(v for k, v in SECRET_ENVS[auth].items() if k.endswith('_env'))}"))
    table: dict = {"url": args.public_url, "auth": auth, **SECRET_ENVS.get(auth, {})}
    if ca:
        table["ca_bundle"] = ca
    return table


def write(target: Path, profile: dict, found: list[str], *, force: bool) -> Path:
    """Write the profile only once it loads as every run loads it; never over a file unless `force`."""
    if target.exists() and not force:
        raise ComfycheckError(f"{target} exists: pass --force to overwrite it, or --write another file")
    target.parent.mkdir(parents=True, exist_ok=True)
    head = "".join(f"# {line}\n" for line in ["Written by `comfycheck init` from what the deployment said:", *found,
                                              "Review required_nodes and required_models; targets are the "
                                              "documented defaults (add a [targets] table to change one)."])
    draft = target.with_name(f".{target.name}.draft")
    draft.write_text(head + "\n" + tomli_w.dumps(profile), encoding="utf-8")
    try:
        load_profile(draft)
    except ComfycheckError as exc:
        draft.unlink()
        raise ComfycheckError(f"the profile for {target} did not validate, nothing was written: {exc}") from None
    draft.replace(target)
    return target


def _name(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or is_loopback(host) or re.fullmatch(r"[\d.:]+", host):
        return f"comfyui-{parts.port or 80}"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", host.split(".")[0]).strip("-") or "deployment"
