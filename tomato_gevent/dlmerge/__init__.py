"""dlmerge: convert v2fly domain-list-community data into proxy rules (data.py parses, merge.py merges, cli.py is the edge)."""
