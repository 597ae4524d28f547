"""fruit30 homework, C3: scratch. Usage: python examples/fruit30/fruit_from_scratch.py --data_dir ../fruit30_split"""
from homework import run

if __name__ == "__main__":
    run("scratch", "../checkpoint/fruit30_pytorch_C3.pth")
