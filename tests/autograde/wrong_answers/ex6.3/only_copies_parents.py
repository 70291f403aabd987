def next_generation(population, scores, space, costs, budget, parents, children, generator):
    order = sorted(range(len(population)), key=lambda i: scores[i])
    elite = [tuple(population[i]) for i in order[:parents]]
    return elite + [elite[int(torch.randint(len(elite), (), generator=generator))]
                    for _ in range(children)]
