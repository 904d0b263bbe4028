from mcptrace.cli import main
import sys
sys.exit(main())
