from dpas.cli import main

main()
