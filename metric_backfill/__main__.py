from metric_backfill.cli._commands import main

main()
