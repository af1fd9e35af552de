from modfleet.cli import main

main()
