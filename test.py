from basicsr_lite.test import main

if __name__ == "__main__":
    raise SystemExit(main())
