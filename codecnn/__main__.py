from codecnn.cli import main

main()
