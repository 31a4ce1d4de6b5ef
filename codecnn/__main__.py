from codecnn.cli import main

main(prog_name="codecnn")
