def next_generation(population, scores, space, costs, budget, parents, children, generator):
    order = sorted(range(len(population)), key=lambda i: scores[i])
    elite = [tuple(population[i]) for i in order[:parents]]
    out = list(elite)
    for k in range(children):
        a = elite[int(torch.randint(len(elite), (), generator=generator))]
        if k % 2 == 0:
            child = tuple(w if torch.rand((), generator=generator) > 0.3
                          else widths[int(torch.randint(len(widths), (), generator=generator))]
                          for w, widths in zip(a, space))
        else:
            b = elite[int(torch.randint(len(elite), (), generator=generator))]
            child = tuple(x if torch.rand((), generator=generator) < 0.5 else y for x, y in zip(a, b))
        out.append(child)                      # never checks the cost
    return out
