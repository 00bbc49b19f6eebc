from tgvc_rt.cli import main

main()
