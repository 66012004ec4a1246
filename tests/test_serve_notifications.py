"""`tidegate serve` tells Slack what it decided and did, in the runbook's comms templates."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.fakes.slack import FakeSlack
from tests.serve_process import Replica
from tests.serve_rollouts import incident, rollout_text, write_pack


def test_a_rollback_reaches_slack_from_start_to_resolved(tmp_path: Path) -> None:
    rollouts = tmp_path / "rollouts"
    rollouts.mkdir()
    (rollouts / "checkout.yaml").write_text(rollout_text("checkout", write_pack(tmp_path), interval="1h"))
    with FakeSlack() as slack:
        url = slack.hook()
        replica = Replica.start(
            tmp_path,
            "notify",
            store=str(tmp_path / "state.db"),
            rollouts=rollouts,
            env={"SLACK_URL": url},
            extra={"notifications": [{"kind": "slack", "name": "ops", "webhook_url_env": "SLACK_URL"}]},
        )
        try:
            deadline = time.monotonic() + 20
            while not [r for r in replica.get("/api/v1/rollouts").json() if r["state"] == "progressing"]:
                assert time.monotonic() < deadline, replica.tail()
                time.sleep(0.05)
            for n in range(3):
                assert incident(replica.url, f"INC-{n}").status_code == 202
            while not any("Resolved" in text for text in slack.texts(url)):
                assert time.monotonic() < deadline, (slack.texts(url), replica.tail())
                time.sleep(0.05)
            texts = slack.texts(url)
            kinds = [next(k for k in ("Investigating", "Mitigating", "Resolved") if k in t) for t in texts]
            assert kinds[0] == "Investigating" and kinds[-1] == "Resolved" and "Mitigating" in kinds
            assert "high-severity-incidents" in texts[0]
            metrics = httpx.get(f"{replica.url}/metrics").text
            assert f'tidegate_notifications{{notifier="ops",result="sent"}} {float(len(texts))}' in metrics
        finally:
            assert replica.terminate() == 0
        assert url.rsplit("/", 1)[1] not in replica.log.read_text()  # the URL's secret part
