"""fruit30 homework, C2: all-layers. Usage: python examples/fruit30/fruit_all_layers.py --data_dir ../fruit30_split"""
from homework import run

if __name__ == "__main__":
    run("all-layers", "../checkpoint/fruit30_pytorch_C2.pth")
