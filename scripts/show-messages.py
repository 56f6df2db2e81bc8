"""Prints webcare's JSON-lines message output as one readable line each."""
import json
import sys

for line in sys.stdin:
    m = json.loads(line)
    if "external_id" not in m:
        print("  update:", m)
        continue
    a = m["author"]
    tags = f"{m['kind']:<14} {m['visibility']:<7} {m['direction']:<8} to_brand={str(m['addressed_to_brand']).lower():<5}"
    print(f"  [{tags}] @{a['handle']} ({a['followers']} followers): {m['text']}")
