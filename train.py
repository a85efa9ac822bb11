from basicsr_lite.train import main

if __name__ == "__main__":
    raise SystemExit(main())
