"""A classroom behind a firewall that lets no UDP through joins through TURN over TCP:
Chromium's classroom page, forced to relay only, gets its TURN server and
short-lived credentials from `joined` (server/turn.py), reaches a real coturn on
loopback over TCP, and plays the teacher through the relay."""

from pathlib import Path
from typing import Any

import pytest

from tests.browser import chromium, frames_grow, open_page, wait_for_state, wait_until_playing
from tests.conftest import make_settings, start_server
from tests.coturn import Coturn, skip_without_coturn
from tests.peers import Teacher

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

# The pages take their iceServers from `joined`; a test forces "relay only" the way
# a browser behind a UDP-blocking firewall ends up: every RTCPeerConnection the page
# makes gets iceTransportPolicy "relay" (added after tests.browser's recorder, so
# that the recorded connections are these).
RELAY_ONLY = """
(() => {
  const Original = window.RTCPeerConnection;
  const RelayOnly = function (config, ...rest) {
    return new Original({ ...(config || {}), iceTransportPolicy: "relay" }, ...rest);
  };
  RelayOnly.prototype = Original.prototype;
  Object.setPrototypeOf(RelayOnly, Original);
  window.RTCPeerConnection = RelayOnly;
})();
"""

# The selected candidate pair of the page's newest open connection.
SELECTED_PAIR = """
async () => {
  const pcs = (window.__pcs || []).filter((pc) => pc.connectionState !== "closed");
  const pc = pcs[pcs.length - 1];
  if (!pc) return null;
  const stats = await pc.getStats();
  let pairId = null;
  for (const report of stats.values()) {
    if (report.type === "transport" && report.selectedCandidatePairId) {
      pairId = report.selectedCandidatePairId;
    }
  }
  const pair = pairId ? stats.get(pairId) : null;
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId);
  const remote = stats.get(pair.remoteCandidateId);
  return {
    state: pair.state,
    local: local ? local.candidateType : null,
    relayProtocol: local ? local.relayProtocol ?? null : null,
    remote: remote ? remote.candidateType : null,
    configuration: pc.getConfiguration().iceTransportPolicy,
    servers: pc.getConfiguration().iceServers.map((s) => s.urls),
  };
}
"""


async def test_a_relay_only_classroom_plays_through_coturn_over_tcp(tmp_path: Path) -> None:
    skip_without_coturn()
    with Coturn(tmp_path) as turn:
        settings = make_settings(tmp_path, media=turn.media_settings("tcp"))
        runner, server = await start_server(settings)
        teacher = Teacher(server.url, server.token("art", "teacher"))
        try:
            await teacher.join()
            await teacher.publish()
            async with chromium() as browser:
                page, log = await open_page(
                    browser, server.page("art", "classroom", "山里的教室"), RELAY_ONLY
                )
                await wait_for_state(page, "live", timeout=30)
                await wait_until_playing(page)
                presented, decoded = await frames_grow(page, seconds=2.0)
                pair: dict[str, Any] | None = await page.evaluate(SELECTED_PAIR)
                problems = log.problems()
        finally:
            await teacher.close()
            await runner.cleanup()
        allocations = turn.log_tail(200_000).count("ALLOCATE processed, success")

    assert presented >= 20 and decoded >= 20, (presented, decoded)
    assert pair is not None, "no selected candidate pair"
    assert pair["configuration"] == "relay", pair
    assert pair["local"] == "relay" and pair["relayProtocol"] == "tcp", pair
    assert pair["servers"] == [turn.urls("tcp")], pair
    assert allocations >= 1, turn.log_tail()
    assert problems == []
