"""fruit30 homework, C1: last-layer. Usage: python examples/fruit30/fruit_last_layer.py --data_dir ../fruit30_split"""
from homework import run

if __name__ == "__main__":
    run("last-layer", "../checkpoint/fruit30_pytorch_C1.pth")
