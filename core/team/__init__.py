"""People and what they may do: roles from the roles file (`roles.py`), the person acting and the one
check every guarded library function makes (`access.py`), and whom a signing-in proxy's header names
(`proxy.py`). Floor 1: it knows nothing of catalogs, so every layer above may call it."""
