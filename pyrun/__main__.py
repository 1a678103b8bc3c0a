from pyrun.cli import main

main()
