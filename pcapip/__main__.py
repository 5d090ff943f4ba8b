from pcapip.cli.main import main

main()
