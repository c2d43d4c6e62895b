"""Asks OpenAI the same question every 30 s with the official SDK, unchanged.

The webhook set OPENAI_BASE_URL to the sidecar, so the first answer is a miss and
the next ones are hits (the Cache-Status header says which).
"""

import time

from openai import OpenAI

client = OpenAI()
while True:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Name three prime numbers."}],
    )
    answer = raw.parse().choices[0].message.content
    print(f"{raw.headers.get('cache-status')}: {answer}", flush=True)
    time.sleep(30)
