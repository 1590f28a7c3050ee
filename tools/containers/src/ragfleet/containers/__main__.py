from ragfleet.containers.cli import main

main()
