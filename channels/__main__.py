from channels.service import main

main()
