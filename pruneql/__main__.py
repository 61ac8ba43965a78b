from pruneql.cli import main

main()
