from policyclf.cli import main

main()
