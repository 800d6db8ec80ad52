from flowbus.cli.main import main

main()
