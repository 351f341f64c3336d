"""The deployment kit in `deploy/`: the compose file and the systemd units parse and
hang together, every command they run is one the engine has, and the image installs
the engine with the very commands the README gives for a plain machine."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli import app
from tests.processes import VENV_BIN

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
README = (DEPLOY.parent / "README.md").read_text()
ENGINE_SETTINGS = {"DATABASE_URL", "SIP_SECRET_KEY", "SIP_MIGRATE_ON_START", "SIP_FILES_DIR", "PREFECT_API_URL"}


def sip_command_exists(words: list[str]) -> None:
    """`sip …` as written: the command and its options are the CLI's."""
    assert words[0].endswith("sip"), words
    result = CliRunner().invoke(app, [*words[1:], "--help"])
    assert result.exit_code == 0, (words, result.output)


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_the_compose_file_runs_every_part_of_the_engine_on_one_shared_configuration() -> None:
    services = compose()["services"]
    assert set(services) == {"db", "prefect-db", "prefect", "migrate", "deploy-flows", "api", "worker"}
    for name, service in services.items():
        for needed in service.get("depends_on", {}):
            assert needed in services, (name, needed)
    engine = {name: s for name, s in services.items() if s.get("image") == "sip-engine:latest" and name != "prefect"}
    assert set(engine) == {"migrate", "deploy-flows", "api", "worker"}
    for name, service in engine.items():
        assert set(service["environment"]) >= ENGINE_SETTINGS, name
        assert service["environment"]["SIP_MIGRATE_ON_START"] == "false"
        assert "files:/var/lib/sip/files" in service["volumes"]
        command = service["command"]
        if command[0] == "sip":
            sip_command_exists([w.replace("${SIP_API_WORKERS:-4}", "4") for w in command])
        else:
            assert command[:4] == ["prefect", "worker", "start", "--pool"] and command[4] == "sip"
    # The order of things: the migration, then the deployments and the API, then the workers.
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["deploy-flows"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["worker"]["depends_on"]["deploy-flows"]["condition"] == "service_completed_successfully"
    assert services["deploy-flows"]["command"][-1] == services["worker"]["command"][-1]  # the same pool
    # The Prefect server: a database of its own, a password, and only on loopback.
    prefect = services["prefect"]["environment"]
    assert "@prefect-db:5432/prefect" in prefect["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert prefect["PREFECT_SERVER_API_AUTH_STRING"].startswith("${PREFECT_AUTH:?")
    for service in services.values():
        assert all(port.startswith("127.0.0.1:") for port in service.get("ports", []))
    # Secrets are asked for, never defaulted.
    text = (DEPLOY / "compose.yaml").read_text()
    for secret in ("SIP_SECRET_KEY", "SIP_DB_PASSWORD", "PREFECT_DB_PASSWORD", "PREFECT_AUTH"):
        assert re.search(rf"\${{{secret}:\?", text) and not re.search(rf"\${{{secret}:-", text), secret


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="docker compose is not installed here; the compose file was checked as YAML and for its structure",
)
def test_docker_compose_reads_the_compose_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("SIP_SECRET_KEY=x\nSIP_DB_PASSWORD=x\nPREFECT_DB_PASSWORD=x\nPREFECT_AUTH=a:b\n")
    done = subprocess.run(
        ["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "--env-file", str(env), "config", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_the_systemd_units_pass_systemd_analyze_and_run_commands_the_engine_has(tmp_path: Path) -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {u.name for u in units} == {
        "sip-prefect.service",
        "sip-migrate.service",
        "sip-api.service",
        "sip-flows.service",
        "sip-deploy.service",
        "sip-worker@.service",
    }
    for unit in units:
        text = unit.read_text()
        assert "[Unit]" in text and "[Service]" in text and "[Install]" in text, unit.name
        assert re.search(r"(?m)^User=sip$", text), unit.name
        command = re.search(r"(?m)^ExecStart=(.*)$", text).group(1).split()  # type: ignore[union-attr]
        if command[0].endswith("/sip"):
            sip_command_exists(command)
        if unit.name not in ("sip-prefect.service",):
            assert "EnvironmentFile=/etc/sip/sip.env" in text, unit.name
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here; the units were checked for their sections and commands")
    # systemd-analyze checks that every command exists: the units as they would be on this machine.
    for unit in units:
        text = unit.read_text().replace("/opt/sip/bin", str(VENV_BIN)).replace("/etc/sip/", f"{tmp_path}/")
        (tmp_path / unit.name.replace("@.", "@1.")).write_text(text)
    (tmp_path / "sip.env").write_text("")
    (tmp_path / "prefect.env").write_text("")
    done = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.glob("*.service"))],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def _shell(lines: str) -> list[str]:
    """Commands as a shell reads them: continuation lines joined, spaces collapsed."""
    return [" ".join(c.split()) for c in lines.replace("\\\n", " ").splitlines() if c.strip()]


def test_the_image_installs_the_engine_with_the_readmes_commands_for_a_plain_machine() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    installs = [c.removeprefix("RUN ") for c in _shell(dockerfile) if c.startswith("RUN ")]
    section = README[README.index("## Deploying") : README.index("## Settings")]
    plain = section[section.index("### A plain machine") : section.index("### Docker")]
    readme_commands = _shell("\n".join(re.findall(r"```sh\n(.*?)```", plain, flags=re.S)))
    assert len(installs) == 5
    for command in installs:
        assert command in readme_commands, command
    assert "COPY . /opt/sip-src" in dockerfile and "/opt/sip-src" in plain
    for command in re.findall(r"CMD \[(.*)\]", dockerfile):
        sip_command_exists([w.strip('" ') for w in command.split(",")])


def test_the_settings_template_names_every_setting_the_kit_needs() -> None:
    template = (DEPLOY / "sip.env.example").read_text()
    named = set(re.findall(r"(?m)^#? ?([A-Z_]+)=", template))
    assert {
        "SIP_SECRET_KEY",
        "SIP_PUBLIC_BASE_URL",
        "SMTP_HOST",
        "SIP_DB_PASSWORD",
        "PREFECT_DB_PASSWORD",
        "PREFECT_AUTH",
        "DATABASE_URL",
        "SIP_MIGRATE_ON_START",
        "SIP_FILES_DIR",
        "PREFECT_API_URL",
    } <= named
    assert re.search(r"(?m)^SIP_SECRET_KEY=$", template)  # no key ships: each installation makes its own
