"""verl's ``custom_reward_function`` backed by ``prefloop serve-rm``.

In a verl config (0.9: under ``reward``; releases before it read a top-level
``custom_reward_function``; ``bench/engines_contract.py`` checks it with verl's own loader)::

    reward:
      custom_reward_function:
        path: <site-packages>/prefloop/training/verl_reward.py
        name: compute_score

and ``PREFLOOP_RM_URL=http://HOST:PORT`` in the workers' environment (default
``http://127.0.0.1:5000``). Data from ``prefloop export --format verl`` carries each prompt's
conversation in ``extra_info["messages"]`` (a JSON string), so the response is scored with its
prompt, formatted exactly as the reward model was trained; without it the response is scored
alone. Standard library only (verl imports this file in its own workers).
"""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

__all__ = ["compute_score"]


def compute_score(data_source: str, solution_str: str, ground_truth: Any = None,
                  extra_info: dict | None = None, **_: Any) -> float:
    """The reward of ``solution_str`` (verl's signature; ``data_source`` and ``ground_truth``
    are unused: a learned reward model needs no reference answer).

    Raises:
        urllib.error.URLError / HTTPError: the server is unreachable or refused the request
            (verl reports it; a silent 0 would train on a wrong reward).
    """
    url = os.environ.get("PREFLOOP_RM_URL", "http://127.0.0.1:5000").rstrip("/") + "/get_reward"
    messages = (extra_info or {}).get("messages")
    if messages:
        body = {"messages": [json.loads(messages) if isinstance(messages, str) else messages],
                "responses": [solution_str]}
    else:
        body = {"query": [solution_str]}
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=float(os.environ.get("PREFLOOP_RM_TIMEOUT", "60"))) as r:
        return float(json.loads(r.read())["rewards"][0])
