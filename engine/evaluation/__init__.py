"""What a trained model's predictions say: accuracy per class, the confusion matrix, the most
confused pairs, a collapse to one class (evaluate), and the images it gets most wrong (top_losses).
Imports data, compute and the experiment; the training writes these into summary.json, the views
read them.
"""
