from obelisk.cli import main

main()
